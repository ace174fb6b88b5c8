package runtime

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/runtime/internal/sentinel"
)

// applyEscape applies p with a fresh output and work directory and
// returns the error; nothing in sentinel may change.
func applyEscape(t *testing.T, p *plan.Plan, outDir string, opts Options) error {
	t.Helper()
	opts.OutputDir, opts.NoTmpfs = outDir, true
	if opts.WorkDir == "" {
		opts.WorkDir = t.TempDir()
	}
	opts.Secrets = map[string]string{"DIB_PASSWORD": "x"}
	opts.Getenv = func(string) string { return "" }
	return Apply(context.Background(), p, opts)
}

// TestEscapeImageName: an image name "../../../tmp/x/ESCAPED" in a plan
// file wrote the output, log and manifests outside the output directory.
func TestEscapeImageName(t *testing.T) {
	dir, snap := sentinel.New(t)
	outDir := t.TempDir()
	p := hostPlan(map[string]string{"root.d/10-make": rootD}, []string{"root.d/10-make"})
	p.Image.Name = filepath.Join(sentinel.Rel(t, outDir, dir), "ESCAPED")
	err := applyEscape(t, p, outDir, Options{})
	if err == nil || !strings.Contains(err.Error(), "image name") {
		t.Fatalf("Apply: %v, want the image name refused", err)
	}
	snap.Unchanged(t, dir)
}

// TestEscapeOutputPaths: absolute and "../" output paths are refused.
func TestEscapeOutputPaths(t *testing.T) {
	dir, snap := sentinel.New(t)
	outDir := t.TempDir()
	for _, bad := range []string{filepath.Join(dir, "evil"), filepath.Join(sentinel.Rel(t, outDir, dir), "evil")} {
		p := hostPlan(map[string]string{"root.d/10-make": rootD}, []string{"root.d/10-make"})
		for i := range p.Steps {
			switch s := &p.Steps[i]; {
			case s.Output != nil:
				s.Output.Path = bad
			case s.Checksum != nil:
				s.Checksum.Path = bad
			case s.Manifest != nil:
				s.Manifest.Dir = bad + ".d"
			}
		}
		err := applyEscape(t, p, outDir, Options{})
		if err == nil || !strings.Contains(err.Error(), "output path") {
			t.Fatalf("Apply with output %s: %v, want it refused", bad, err)
		}
		// The point of use refuses it too (a plan that passed Check).
		b := &Build{Options: Options{OutputDir: outDir}}
		if got, err := b.OutputPath(bad); err == nil {
			t.Errorf("OutputPath(%q) = %q", bad, got)
		}
	}
	snap.Unchanged(t, dir)
}

// TestEscapeRelease: release "bookworm/../../../tmp/x/ESCAPE" created a
// directory outside the image cache and bound it as apt's cache.
func TestEscapeRelease(t *testing.T) {
	dir, snap := sentinel.New(t)
	cache := t.TempDir()
	p := hostPlan(map[string]string{"root.d/10-make": rootD}, []string{"root.d/10-make"})
	p.Steps[0].Bootstrap = &plan.Bootstrap{Provider: "mmdebstrap", Family: "debian", Available: true, Arch: "amd64",
		Suite: "bookworm/" + filepath.Join(sentinel.Rel(t, filepath.Join(cache, "apt"), dir), "ESCAPE"), Mirror: "http://deb.debian.org/debian"}
	err := applyEscape(t, p, t.TempDir(), Options{ImageCache: cache, DryRun: true})
	if err == nil || !strings.Contains(err.Error(), "apt cache") {
		t.Fatalf("Apply: %v, want the release refused as a cache path", err)
	}
	if ents, _ := os.ReadDir(cache); len(ents) != 0 {
		t.Errorf("image cache has %d entries", len(ents))
	}
	snap.Unchanged(t, dir)
}

// TestEscapeThroughTree: the tree's own symlinks (an element can make
// any) never lead dib's host-side writes out of it: a /tmp linked to a
// host directory is not emptied by finalise_base, a linked
// /etc/dib-manifests gets no manifests, hook-tree symlinks stay inside.
func TestEscapeThroughTree(t *testing.T) {
	requireGNUTar(t)
	dir, snap := sentinel.New(t)
	script := `#!/bin/sh
set -e
mkdir -p "$TARGET_ROOT/etc" "$TARGET_ROOT/var/lib/dpkg"
ln -s ` + dir + ` "$TARGET_ROOT/tmp"
ln -s ` + dir + `/x "$TARGET_ROOT/etc/dib-manifests"
ln -s ` + dir + ` "$TARGET_ROOT/root"
ln -s ` + dir + ` "$TARGET_ROOT/var/log"
ln -s ` + dir + `/evil "$TARGET_ROOT/var/lib/dpkg/status"
`
	p := hostPlan(map[string]string{"root.d/10-links": script}, []string{"root.d/10-links"})
	p.Files = append(p.Files, plan.File{Path: "bin/out", Mode: uint32(os.ModeSymlink | 0o777), Link: dir})
	p.Steps[1].Hooks.Generated = append(p.Steps[1].Hooks.Generated, plan.GeneratedFile{Path: "bin/out/evil", Content: "overwritten\n"})
	outDir := t.TempDir()
	if err := applyEscape(t, p, outDir, Options{}); err != nil {
		t.Fatal(err)
	}
	snap.Unchanged(t, dir)
	if _, err := os.Stat(filepath.Join(outDir, "img.tar")); err != nil {
		t.Error(err)
	}
}

// TestConcurrentApplies: two builds into one output directory run one
// after the other; the second says whom it waits for, NoWait fails at
// once, and each log holds only its own build. The first build's script
// holds the lock until the second has said it waits (a gate file, not a
// sleep: on a loaded machine the second may take any time to get there).
func TestConcurrentApplies(t *testing.T) {
	requireGNUTar(t)
	outDir := t.TempDir()
	gate := filepath.Join(t.TempDir(), "gate")
	slow := "#!/bin/sh\necho first-build-line\nfor i in $(seq 3000); do [ -e " + gate + " ] && break; sleep 0.1; done\necho first-build-end\n"
	p1 := hostPlan(map[string]string{"root.d/10-make": rootD, "post-root.d/10-slow": slow}, []string{"root.d/10-make", "post-root.d/10-slow"})
	p2 := hostPlan(map[string]string{"root.d/10-make": rootD, "post-root.d/10-other": "#!/bin/sh\necho second-build-line\n"}, []string{"root.d/10-make", "post-root.d/10-other"})
	p2.Image.Name = "img2"
	started := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- applyEscape(t, p1, outDir, Options{Observer: ObserverFunc(func(e Event) {
			if e.Type == ScriptStarted && e.Script == "10-slow" {
				close(started)
			}
		})})
	}()
	<-started
	// NoWait: refused at once, naming the holder.
	err := applyEscape(t, p2, outDir, Options{NoWait: true})
	if err == nil || !strings.Contains(err.Error(), "is in use by dib apply of img (pid ") {
		t.Fatalf("NoWait apply: %v", err)
	}
	var waited []Event
	if err := applyEscape(t, p2, outDir, Options{Observer: ObserverFunc(func(e Event) {
		if e.Type == LockWaiting {
			waited = append(waited, e)
			if err := os.WriteFile(gate, nil, 0o644); err != nil {
				t.Error(err)
			}
		}
	})}); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if len(waited) != 1 || !strings.Contains(waited[0].Holder, "dib apply of img") {
		t.Errorf("lock-waiting events: %+v", waited)
	}
	log1, _ := os.ReadFile(filepath.Join(outDir, "img.log"))
	log2, _ := os.ReadFile(filepath.Join(outDir, "img2.log"))
	if !strings.Contains(string(log1), "first-build-end") || strings.Contains(string(log1), "second-build-line") {
		t.Errorf("first log:\n%s", log1)
	}
	if !strings.Contains(string(log2), "second-build-line") || strings.Contains(string(log2), "first-build") {
		t.Errorf("second log:\n%s", log2)
	}
}

// TestOutputDirLockedByCaller: a multi-image apply locks the output
// directory once (LockOutputDir) and builds its images into it at once
// with OutputDirLocked: each post-root.d script waits until the other
// build's runs too, which never happens if one waits for the other.
// Without the flag, an Apply with NoWait is refused while the caller holds
// the lock; each log holds only its own build.
func TestOutputDirLockedByCaller(t *testing.T) {
	requireGNUTar(t)
	outDir, meet := t.TempDir(), t.TempDir()
	release, err := LockOutputDir(context.Background(), outDir, true, "dib apply of img, img2", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	p0 := hostPlan(map[string]string{"root.d/10-make": rootD}, []string{"root.d/10-make"})
	if err := applyEscape(t, p0, outDir, Options{NoWait: true}); err == nil || !strings.Contains(err.Error(), "is in use by dib apply of img, img2") {
		t.Fatalf("apply without OutputDirLocked: %v", err)
	}
	meetScript := func(name string) string {
		return "#!/bin/sh\necho " + name + "-line\ntouch " + meet + "/" + name + "\nfor i in $(seq 200); do [ $(ls " + meet + " | wc -l) -ge 2 ] && exit 0; sleep 0.1; done\nexit 1\n"
	}
	p1 := hostPlan(map[string]string{"root.d/10-make": rootD, "post-root.d/10-meet": meetScript("first")}, []string{"root.d/10-make", "post-root.d/10-meet"})
	p2 := hostPlan(map[string]string{"root.d/10-make": rootD, "post-root.d/10-meet": meetScript("second")}, []string{"root.d/10-make", "post-root.d/10-meet"})
	p2.Image.Name = "img2"
	errs := make(chan error, 2)
	for _, p := range []*plan.Plan{p1, p2} {
		go func() { errs <- applyEscape(t, p, outDir, Options{OutputDirLocked: true, NoWait: true}) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	log1, _ := os.ReadFile(filepath.Join(outDir, "img.log"))
	log2, _ := os.ReadFile(filepath.Join(outDir, "img2.log"))
	if !strings.Contains(string(log1), "first-line") || strings.Contains(string(log1), "second-line") ||
		!strings.Contains(string(log2), "second-line") || strings.Contains(string(log2), "first-line") {
		t.Errorf("logs mixed:\n%s\n---\n%s", log1, log2)
	}
}

// TestEscapeScriptPath: a phase script named by a path out of the hook
// tree is not run.
func TestEscapeScriptPath(t *testing.T) {
	dir, snap := sentinel.New(t)
	evil := filepath.Join(dir, "run-me")
	if err := os.WriteFile(evil, []byte("#!/bin/sh\ntouch "+dir+"/ran\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	snap = sentinel.Take(t, dir)
	p := hostPlan(map[string]string{"root.d/10-make": rootD}, []string{"root.d/10-make"})
	for i := range p.Steps {
		if ph := p.Steps[i].Phase; ph != nil {
			ph.Scripts[0].Path = "../../../../../../../.." + evil
		}
	}
	err := applyEscape(t, p, t.TempDir(), Options{})
	if err == nil || !strings.Contains(err.Error(), "leads out of the hook tree") {
		t.Fatalf("Apply: %v", err)
	}
	snap.Unchanged(t, dir)
}
