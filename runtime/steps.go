package runtime

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/runtime/output"
	"github.com/dibuild/dib/runtime/phase"
	"github.com/dibuild/dib/runtime/shell"
)

// writeHooks recreates the merged hook tree from the plan's files and
// blobs, plus the files generated from the plan (package lists, maps).
func (b *Build) writeHooks(h *plan.Hooks) error {
	root := b.Workspace.HooksPath
	files := append([]plan.File(nil), b.Plan.Files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	for _, f := range files {
		dst, err := inside(root, f.Path)
		if err != nil {
			return err
		}
		mode := fs.FileMode(f.Mode)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		switch {
		case mode&fs.ModeDir != 0:
			if err := os.MkdirAll(dst, mode.Perm()|0o700); err != nil {
				return err
			}
		case mode&fs.ModeSymlink != 0:
			if err := os.Symlink(f.Link, dst); err != nil {
				return err
			}
		default:
			data, ok := b.Plan.Blob(f.SHA256)
			if !ok && f.Size > 0 {
				return fmt.Errorf("hook tree: no content for %s (sha256 %s) in the plan", f.Path, f.SHA256)
			}
			if err := os.WriteFile(dst, data, mode.Perm()); err != nil {
				return err
			}
			if err := os.Chmod(dst, mode.Perm()); err != nil {
				return err
			}
		}
	}
	if h != nil {
		for _, g := range h.Generated {
			dst, err := inside(root, g.Path)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(dst, []byte(g.Content), 0o644); err != nil {
				return err
			}
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		return err
	}
	b.hooksWritten = true
	return nil
}

// ensureHooks writes the hook tree if the plan had no hooks step before.
func (b *Build) ensureHooks() error {
	if b.hooksWritten {
		return nil
	}
	return b.writeHooks(nil)
}

// inside joins a plan's slash path under root, refusing escapes.
func inside(root, p string) (string, error) {
	clean := path.Clean("/" + p)
	if clean == "/" || strings.Contains(p, "\x00") {
		return "", fmt.Errorf("hook tree: bad path %q", p)
	}
	return filepath.Join(root, filepath.FromSlash(clean[1:])), nil
}

// phaseObserver turns script callbacks into Events.
type phaseObserver struct{ b *Build }

func (o phaseObserver) ScriptStarted(ph string, s phase.Script) {
	o.b.observer.Event(Event{Type: ScriptStarted, Time: time.Now(), Step: o.b.step.ID, Phase: ph, Element: s.Element, Script: s.Name, LogPath: o.b.LogPath})
}

func (o phaseObserver) ScriptFinished(ph string, s phase.Script, d time.Duration, err error) {
	e := Event{Type: ScriptFinished, Time: time.Now(), Step: o.b.step.ID, Phase: ph, Element: s.Element, Script: s.Name, Duration: d, LogPath: o.b.LogPath}
	if err != nil {
		e.Type, e.Error = ScriptFailed, err.Error()
	}
	o.b.observer.Event(e)
}

// phaseName is DIB's breakpoint name of a phase: install.d -> install.
func phaseName(p string) string { return strings.TrimSuffix(p, ".d") }

func (b *Build) runPhase(ctx context.Context, s *plan.Step) error {
	ph := s.Phase
	if ph == nil {
		return errors.New("phase step without phase")
	}
	if err := b.ensureHooks(); err != nil {
		return err
	}
	where := ph.Where
	if where == "" {
		where = s.Where
	}
	// DIB's cleanup.d runs on the finished tree, outside the chroot: the
	// chroot is undone first; the image's /tmp and logs are cleaned after
	// it, as finalise_base does (beforeOutputs).
	if ph.Name == "cleanup.d" {
		if err := b.teardownChroot(ctx); err != nil {
			return err
		}
	}
	if len(ph.Scripts) == 0 {
		return nil
	}
	if where == plan.Chroot {
		if err := b.PrepareChroot(); err != nil {
			return fmt.Errorf("prepare chroot: %w", err)
		}
	}
	b.breakpoint(ctx, "before-"+phaseName(ph.Name), s)
	r := &phase.Runner{
		Shell:      b.Shell,
		HooksPath:  b.Workspace.HooksPath,
		TargetRoot: b.ChrootRoot,
		HostEnv:    b.HostEnv,
		ChrootEnv:  b.ChrootEnv,
		LogPath:    b.LogPath,
		Observer:   phaseObserver{b},
	}
	p := phase.Phase{Name: ph.Name, Where: where}
	for _, e := range ph.EnvironmentD {
		p.EnvironmentD = append(p.EnvironmentD, phase.EnvFile{Element: e.Element, Name: e.Name, Path: e.Path})
	}
	for _, sc := range ph.Scripts {
		p.Scripts = append(p.Scripts, phase.Script{Element: sc.Element, Name: sc.Name, Path: sc.Path})
	}
	times, err := r.Run(ctx, p)
	for _, t := range times {
		fmt.Fprintf(b.Log, "dib: %s %s/%s took %s\n", ph.Name, t.Element, t.Script, t.Duration.Round(time.Millisecond))
	}
	if err != nil {
		return err
	}
	b.breakpoint(ctx, "after-"+phaseName(ph.Name), s)
	return nil
}

// installPackages runs install-packages in the chroot with the Dibfile's
// packages (DIB's -p), after install.d.
func (b *Build) installPackages(ctx context.Context, s *plan.Step) error {
	if s.Packages == nil || len(s.Packages.Names) == 0 {
		return nil
	}
	if err := b.PrepareChroot(); err != nil {
		return err
	}
	argv := b.chroot().Argv(append([]string{"install-packages"}, s.Packages.Names...)...)
	_, err := b.Shell.Run(ctx, shell.Command{Argv: argv, Env: b.ChrootEnv, Prefix: "packages/install-packages"})
	return err
}

// finaliseBase does what DIB's finalise_base does after finalise.d: empty
// the image's /tmp, truncate /var/log files, delete /root/*.log.
func (b *Build) finaliseBase() error {
	if b.finalised || b.Options.DryRun {
		return nil
	}
	b.finalised = true
	root := b.ChrootRoot
	tmp := filepath.Join(root, "tmp")
	if ents, err := os.ReadDir(tmp); err == nil {
		for _, e := range ents {
			if err := os.RemoveAll(filepath.Join(tmp, e.Name())); err != nil {
				return err
			}
		}
	}
	_ = filepath.WalkDir(filepath.Join(root, "var/log"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			return os.Truncate(p, 0)
		}
		return nil
	})
	if ents, err := os.ReadDir(filepath.Join(root, "root")); err == nil {
		for _, e := range ents {
			if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".log") {
				os.Remove(filepath.Join(root, "root", e.Name()))
			}
		}
	}
	return nil
}

// beforeOutputs ends the chroot and tidies the tree once, before anything
// is packed from it.
func (b *Build) beforeOutputs(ctx context.Context) error {
	if err := b.teardownChroot(ctx); err != nil {
		return err
	}
	return b.finaliseBase()
}

func (b *Build) writeOutput(ctx context.Context, s *plan.Step) error {
	o := s.Output
	if o == nil {
		return errors.New("output step without output")
	}
	if w := b.Options.OutputWriters[o.Format]; w != nil {
		return w.Run(ctx, b, s)
	}
	if err := b.beforeOutputs(ctx); err != nil {
		return err
	}
	dest := b.OutputPath(o.Path)
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	if b.Options.DryRun {
		fmt.Fprintf(b.Shell.Out, "+ write %s output %s\n", o.Format, dest)
		return nil
	}
	root := b.ChrootRoot
	var err error
	switch o.Format {
	case "tar":
		err = output.Tar(ctx, b.Shell, root, dest)
	case "tgz":
		err = output.TarGz(ctx, b.Shell, root, dest)
	case "aci":
		manifest := output.ACIManifest(b.Plan.Image.Name, b.Plan.Image.Arch)
		if m := b.envValue("ACI_MANIFEST"); m != "" {
			if manifest, err = os.ReadFile(m); err != nil {
				return fmt.Errorf("ACI_MANIFEST: %w", err)
			}
		}
		err = output.ACI(ctx, b.Shell, root, dest, manifest)
	case "docker":
		target := o.DockerTarget
		if target == "" {
			target = b.envValue("DOCKER_TARGET")
		}
		err = output.Docker(ctx, b.Shell, root, dest, output.DockerOptions{Target: target, Arch: b.Plan.Image.Arch})
	default:
		err = fmt.Errorf("output format %q is not supported by this dib runtime yet", o.Format)
	}
	if err != nil {
		return err
	}
	b.AddOutput(dest)
	return nil
}

func (b *Build) checksum(s *plan.Step) error {
	c := s.Checksum
	if c == nil || b.Options.DryRun {
		return nil
	}
	files, err := output.Checksums(b.OutputPath(c.Path), c.Algorithms)
	for _, f := range files {
		b.AddOutput(f)
	}
	return err
}

// envValue returns a variable of the host environment.
func (b *Build) envValue(name string) string {
	for _, kv := range b.HostEnv {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

// writeManifests writes DIB's manifests directory NAME.d beside the
// outputs (and /etc/dib-manifests in the image): the build environment
// with secrets redacted, the plan ID and the installed packages.
func (b *Build) writeManifests(ctx context.Context, s *plan.Step) error {
	if b.Options.DryRun || s.Manifest == nil {
		return nil
	}
	if err := b.beforeOutputs(ctx); err != nil {
		return err
	}
	var env bytes.Buffer
	for _, e := range b.Plan.Env {
		fmt.Fprintf(&env, "export %s=%s\n", e.Name, shellQuote(e.Value)) // secrets stay redacted in the plan
	}
	pkgs, err := dpkgPackages(filepath.Join(b.ChrootRoot, "var/lib/dpkg/status"))
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"dib_environment": env.Bytes(),
		"dib_plan_id":     []byte(b.Plan.ID + "\n"),
		"dib_elements":    []byte(strings.ReplaceAll(b.envValue("IMAGE_ELEMENT"), " ", "\n") + "\n"),
		"dpkg_packages":   pkgs,
	}
	inImage := filepath.Join(b.ChrootRoot, "etc/dib-manifests")
	beside := b.OutputPath(s.Manifest.Dir)
	for _, dir := range []string{inImage, beside} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		names := make([]string, 0, len(files))
		for n := range files {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(dir, n), files[n], 0o644); err != nil {
				return err
			}
		}
	}
	b.AddOutput(beside) // removed if the build fails later
	return nil
}

// dpkgPackages lists "name version arch" of installed packages from a dpkg
// status file, sorted; empty when the tree has no dpkg.
func dpkgPackages(status string) ([]byte, error) {
	data, err := os.ReadFile(status)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, para := range strings.Split(string(data), "\n\n") {
		f := map[string]string{}
		sc := bufio.NewScanner(strings.NewReader(para))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ": "); ok && !strings.HasPrefix(k, " ") {
				f[k] = v
			}
		}
		if f["Package"] == "" || !strings.HasSuffix(f["Status"], " installed") {
			continue
		}
		lines = append(lines, f["Package"]+" "+f["Version"]+" "+f["Architecture"])
	}
	sort.Strings(lines)
	if len(lines) == 0 {
		return nil, nil
	}
	return []byte(strings.Join(lines, "\n") + "\n"), nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// breakpoint opens an interactive shell when name is among Options.Break
// (DIB's break=before-install,after-error …): in the chroot for in-chroot
// phases, on the host otherwise. It needs a terminal on stdin.
func (b *Build) breakpoint(ctx context.Context, name string, s *plan.Step) {
	found := false
	for _, want := range b.Options.Break {
		if want == name {
			found = true
		}
	}
	if !found || b.Options.DryRun {
		return
	}
	where := s.Where
	if s.Phase != nil && s.Phase.Where != "" {
		where = s.Phase.Where
	}
	fmt.Fprintf(os.Stderr, "dib: breakpoint %s at step %q: exit the shell to continue\n", name, s.Title)
	argv, env := []string{"bash", "-i"}, b.HostEnv
	if where == plan.Chroot && b.chrootOn {
		argv, env = b.chroot().Argv("bash", "-i"), b.ChrootEnv
	}
	_, _ = b.Shell.Run(ctx, shell.Command{Argv: argv, Env: env, Interactive: true, Dir: b.Workspace.BuildDir})
}
