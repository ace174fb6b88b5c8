package runtime

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/compiler/plan/format"
	"github.com/dibuild/dib/runtime/cache"
	"github.com/dibuild/dib/runtime/output"
	"github.com/dibuild/dib/runtime/phase"
	"github.com/dibuild/dib/runtime/safepath"
	"github.com/dibuild/dib/runtime/sde"
	"github.com/dibuild/dib/runtime/shell"
)

// writeHooks recreates the merged hook tree from the plan's files and
// blobs, plus the files generated from the plan (package lists, maps).
func (b *Build) writeHooks(h *plan.Hooks) error {
	root := b.Workspace.HooksPath
	files := append([]plan.File(nil), b.Plan.Files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	for _, f := range files {
		if err := b.writePlanFile(root, f); err != nil {
			return err
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

// writePlanFile writes one of the plan's files (a hook-tree path) under
// root.
func (b *Build) writePlanFile(root string, f plan.File) error {
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
		return os.MkdirAll(dst, mode.Perm()|0o700)
	case mode&fs.ModeSymlink != 0:
		return os.Symlink(f.Link, dst)
	}
	data, ok := b.Plan.Blob(f.SHA256)
	if !ok && f.Size > 0 {
		return fmt.Errorf("hook tree: no content for %s (sha256 %s) in the plan", f.Path, f.SHA256)
	}
	if err := os.WriteFile(dst, data, mode.Perm()); err != nil {
		return err
	}
	return os.Chmod(dst, mode.Perm())
}

// ensureHooks writes the hook tree if the plan had no hooks step before.
func (b *Build) ensureHooks() error {
	if b.hooksWritten {
		return nil
	}
	return b.writeHooks(nil)
}

// inside places a plan's slash path in the hook tree root, refusing
// escapes (a path with "..", or through a symlink of the tree).
func inside(root, p string) (string, error) {
	if path.Clean("/"+p) == "/" {
		return "", fmt.Errorf("hook tree: bad path %q", p)
	}
	return safepath.InRoot("hook-tree path", root, p)
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
	prepare := func() error {
		if where == plan.Chroot {
			if err := b.PrepareChroot(); err != nil {
				return fmt.Errorf("prepare chroot: %w", err)
			}
		} else if ph.Name != "cleanup.d" {
			// Host hooks that run apt in the tree (debian-minimal's root.d)
			// use the shared cache too, as under DIB.
			if err := b.bindAptCache(); err != nil {
				return err
			}
		}
		return nil
	}
	if err := prepare(); err != nil {
		return err
	}
	b.breakpoint(ctx, "before-"+phaseName(ph.Name), s)
	r := &phase.Runner{
		Shell:      b.Shell,
		HooksPath:  b.Workspace.HooksPath,
		TargetRoot: b.Tree(),
		HostEnv:    b.HostEnv,
		ChrootEnv:  b.ChrootEnv,
		LogPath:    b.LogPath,
		Observer:   phaseObserver{b},
	}
	// Scripts and environment files are named by their path in the hook
	// tree; one leading out of it is refused here, where it is run.
	for _, f := range append(append([]string(nil), pathsOfEnv(ph.EnvironmentD)...), pathsOfScripts(ph.Scripts)...) {
		if _, err := safepath.InRoot("hook-tree path", b.Workspace.HooksPath, f); err != nil || filepath.IsAbs(f) {
			return fmt.Errorf("phase %s: hook-tree path %q leads out of the hook tree", ph.Name, f)
		}
	}
	p := phase.Phase{Name: ph.Name, Where: where}
	for _, e := range ph.EnvironmentD {
		p.EnvironmentD = append(p.EnvironmentD, phase.EnvFile{Element: e.Element, Name: e.Name, Path: e.Path})
	}
	var all []phase.Script
	for _, sc := range ph.Scripts {
		all = append(all, phase.Script{Element: sc.Element, Name: sc.Name, Path: sc.Path})
	}
	// With the build cache, the phase runs in segments that end at its
	// points (cache.Point), each kept as a snapshot, and starts after
	// the point it was restored at.
	from, points := b.phaseCachePoints(s)
	if from > 0 {
		fmt.Fprintf(b.Log, "dib: %s: the first %d scripts ran in the build whose snapshot was restored\n", ph.Name, from)
	}
	for from < len(all) {
		to, q := len(all), -1
		for k, pt := range points {
			if pt > from {
				to, q = pt, k
				break
			}
		}
		if err := prepare(); err != nil {
			return err
		}
		p.Scripts = all[from:to]
		times, err := r.Run(ctx, p)
		for _, t := range times {
			fmt.Fprintf(b.Log, "dib: %s %s/%s took %s\n", ph.Name, t.Element, t.Script, t.Duration.Round(time.Millisecond))
		}
		if err != nil {
			return err
		}
		if q >= 0 {
			b.recordPoint(ctx, b.cache, b.stepIndex-1, q)
		}
		from = to
	}
	b.breakpoint(ctx, "after-"+phaseName(ph.Name), s)
	return nil
}

// phaseCachePoints returns, for the phase step s, how many of its scripts
// the restored snapshot already ran, and the number of scripts after
// which each of its cache points is (cache.Key.Points, in order).
func (b *Build) phaseCachePoints(s *plan.Step) (from int, points []int) {
	sc := b.cache
	if sc == nil || b.stepIndex < 1 || &b.Plan.Steps[b.stepIndex-1] != s {
		return 0, nil
	}
	i := b.stepIndex - 1
	if sc.dec.Restore == i {
		from = sc.dec.RestoreScripts
	}
	for _, pt := range sc.keys[i].Points {
		points = append(points, pt.Scripts)
	}
	return from, points
}

func pathsOfEnv(fs []plan.EnvFile) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Path
	}
	return out
}

func pathsOfScripts(ss []plan.Script) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Path
	}
	return out
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
	root := b.Tree()
	// The tree's own symlinks resolve inside it (an image's /tmp may be a
	// link): nothing outside the tree is ever emptied.
	tmp, err := safepath.InRoot("image path", root, "/tmp")
	if err != nil {
		return err
	}
	varLog, err := safepath.InRoot("image path", root, "/var/log")
	if err != nil {
		return err
	}
	rootHome, err := safepath.InRoot("image path", root, "/root")
	if err != nil {
		return err
	}
	if ents, err := os.ReadDir(tmp); err == nil {
		for _, e := range ents {
			if err := os.RemoveAll(filepath.Join(tmp, e.Name())); err != nil {
				return err
			}
		}
	}
	_ = filepath.WalkDir(varLog, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			return os.Truncate(p, 0)
		}
		return nil
	})
	if ents, err := os.ReadDir(rootHome); err == nil {
		for _, e := range ents {
			if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".log") {
				os.Remove(filepath.Join(rootHome, e.Name()))
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
	if format.IsDisk(o.Format) {
		return b.writeDiskOutput(ctx, s)
	}
	if f, _ := format.Lookup(o.Format); f.Source == format.Element {
		return b.elementOutput(o, f)
	}
	write := b.treeWriter(o)
	if write == nil {
		return fmt.Errorf("output format %q is not supported by this dib runtime yet", o.Format)
	}
	if err := b.beforeOutputs(ctx); err != nil {
		return err
	}
	dest, err := b.OutputPath(o.Path)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	if b.Options.DryRun {
		fmt.Fprintf(b.Shell.Out, "+ write %s output %s\n", o.Format, dest)
		return nil
	}
	if err := b.Creating(dest); err != nil {
		return err
	}
	if err := write(ctx, b.Tree(), dest); err != nil {
		return err
	}
	b.AddOutput(dest)
	return nil
}

// elementOutput checks and lists an output an element's hooks wrote (the
// iso element's cleanup.d writes NAME.iso) before the output steps.
func (b *Build) elementOutput(o *plan.Output, f format.Format) error {
	dest, err := b.OutputPath(o.Path)
	if err != nil {
		return err
	}
	if b.Options.DryRun {
		fmt.Fprintf(b.Shell.Out, "+ check %s output %s (written by the %s element)\n", o.Format, dest, f.Element)
		return nil
	}
	if fi, err := os.Stat(dest); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("the %s element wrote no %s output %s", f.Element, o.Format, dest)
	}
	b.AddOutput(dest)
	return nil
}

// SourceDateEpoch resolves the plan's SOURCE_DATE_EPOCH e for the tree at root
// (runtime/sde) and logs it with its source.
func (b *Build) SourceDateEpoch(root string, e plan.Epoch) (int64, error) {
	r, err := sde.Resolve(root, e)
	if err != nil {
		return 0, err
	}
	fmt.Fprintf(b.Log, "SOURCE_DATE_EPOCH=%d (%s)\n", r.Epoch, r.Why)
	return r.Epoch, nil
}

// treeWriter returns the writer of a tree format of the format table (nil
// for any other format).
func (b *Build) treeWriter(o *plan.Output) func(ctx context.Context, root, dest string) error {
	switch o.Format {
	case "tar":
		return func(ctx context.Context, root, dest string) error {
			epoch, err := b.SourceDateEpoch(root, o.Epoch)
			if err != nil {
				return err
			}
			// The build cache's copy is written with the file, not
			// read back from it after the step (cache.OutputPayload).
			var staged *cache.Staged
			if b.cache != nil {
				if staged, err = b.cache.c.Stage(); err != nil {
					fmt.Fprintf(b.Log, "dib: output tar: no copy for the build cache: %v\n", err)
					staged = nil
				}
			}
			var also io.Writer
			if staged != nil {
				also = staged
			}
			if err := output.Tar(ctx, b.Shell, root, dest, epoch, also); err != nil {
				if staged != nil {
					staged.Discard()
				}
				return err
			}
			if staged != nil {
				if err := staged.Close(); err != nil {
					fmt.Fprintf(b.Log, "dib: output tar: the build cache's copy failed (%v): the cache reads the output instead\n", err)
					staged.Discard()
					return nil
				}
				b.staged = &stagedOutput{path: dest, staged: staged}
			}
			return nil
		}
	case "tgz":
		return func(ctx context.Context, root, dest string) error {
			epoch, err := b.SourceDateEpoch(root, o.Epoch)
			if err != nil {
				return err
			}
			return output.TarGz(ctx, b.Shell, root, dest, epoch)
		}
	case "squashfs":
		return func(ctx context.Context, root, dest string) error {
			return output.Squashfs(ctx, b.Shell, root, dest)
		}
	case "aci":
		return func(ctx context.Context, root, dest string) error {
			manifest := output.ACIManifest(b.Plan.Image.Name, b.Plan.Image.Arch)
			if m := b.envValue("ACI_MANIFEST"); m != "" {
				var err error
				if manifest, err = os.ReadFile(m); err != nil {
					return fmt.Errorf("ACI_MANIFEST: %w", err)
				}
			}
			epoch, err := b.SourceDateEpoch(root, o.Epoch)
			if err != nil {
				return err
			}
			return output.ACI(ctx, b.Shell, root, dest, manifest, epoch)
		}
	case "docker":
		return func(ctx context.Context, root, dest string) error {
			target := o.DockerTarget
			if target == "" {
				target = b.envValue("DOCKER_TARGET")
			}
			epoch, err := b.SourceDateEpoch(root, o.Epoch)
			if err != nil {
				return err
			}
			return output.Docker(ctx, b.Shell, root, dest, output.DockerOptions{Target: target, Arch: b.Plan.Image.Arch, Created: time.Unix(epoch, 0)})
		}
	}
	return nil
}

func (b *Build) checksum(s *plan.Step) error {
	c := s.Checksum
	if c == nil || b.Options.DryRun {
		return nil
	}
	dest, err := b.OutputPath(c.Path)
	if err != nil {
		return err
	}
	for _, a := range c.Algorithms {
		if err := b.Creating(dest + "." + a); err != nil {
			return err
		}
	}
	files, reused, err := output.Checksums(dest, c.Algorithms, b.imageSums)
	for _, f := range files {
		b.AddOutput(f)
	}
	if reused {
		fmt.Fprintf(b.Log, "dib: checksums of %s computed while the outputs were written\n", filepath.Base(dest))
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
	status, err := safepath.InRoot("image path", b.Tree(), "/var/lib/dpkg/status")
	if err != nil {
		return err
	}
	pkgs, err := dpkgPackages(status)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		// DIB's two records (manifests element, cleanup.d), as DIB writes
		// them: `echo "$DIB_ENV"`, `echo "$DIB_ARGS"` (secrets redacted).
		"dib_environment": []byte(b.envValue("DIB_ENV") + "\n"),
		"dib_arguments":   []byte(b.envValue("DIB_ARGS") + "\n"),
		// The manifests step's own ID, not the plan's: it covers every
		// step that built the tree and nothing of the outputs, so an
		// image restored from the build cache for a plan that only adds
		// an output is the image a cold build of that plan makes.
		"dib_plan_id":   []byte(s.ID + "\n"),
		"dib_elements":  []byte(strings.ReplaceAll(b.envValue("IMAGE_ELEMENT"), " ", "\n") + "\n"),
		"dpkg_packages": pkgs,
	}
	inImage, err := safepath.InRoot("image path", b.Tree(), "/etc/dib-manifests")
	if err != nil {
		return err
	}
	beside, err := b.OutputPath(s.Manifest.Dir)
	if err != nil {
		return err
	}
	if err := b.Creating(beside); err != nil {
		return err
	}
	for _, dir := range []string{inImage, beside} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		// In the image, root's only (they may hold a password), as DIB.
		mode := fs.FileMode(0o644)
		if dir == inImage {
			mode = 0o600
		}
		names := slices.Sorted(maps.Keys(files))
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(dir, n), files[n], mode); err != nil {
				return err
			}
			if err := os.Chmod(filepath.Join(dir, n), mode); err != nil {
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
	b.observer.Event(Event{Type: Breakpoint, Time: time.Now(), Step: s.ID, Kind: s.Kind, Title: s.Title, Reason: name})
	argv, env := []string{"bash", "-i"}, b.HostEnv
	if where == plan.Chroot && b.chrootOn {
		argv, env = b.chroot().Argv("bash", "-i"), b.ChrootEnv
	}
	_, _ = b.Shell.Run(ctx, shell.Command{Argv: argv, Env: env, Interactive: true, Dir: b.Workspace.BuildDir})
}
