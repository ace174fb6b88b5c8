package runtime

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/runtime/stack"
)

// TestAptCacheSlots: apt fails at once when another apt holds its archives
// directory, so two builds running at once get different copies of the
// apt cache: the second a copy seeded with hard links to the first's
// packages, which gets back what the second downloaded when it ends. No
// lock file is left; a build after them uses the cache itself again.
func TestAptCacheSlots(t *testing.T) {
	imageCache := t.TempDir()
	build := func() *Build {
		p := &plan.Plan{Image: plan.Image{Name: "img"}, Steps: []plan.Step{{Kind: plan.KindBootstrap,
			Bootstrap: &plan.Bootstrap{Provider: "mmdebstrap", Family: "debian", Suite: "bookworm", Arch: "amd64"}}}}
		return &Build{Plan: p, Options: Options{ImageCache: imageCache, Getenv: func(string) string { return "" }}, Stack: &stack.Stack{}, Log: io.Discard}
	}
	a, b := build(), build()
	dirA, err := a.AptCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(imageCache, "apt", "debian-bookworm-amd64")
	if dirA != base {
		t.Fatalf("the first build uses %s, want %s", dirA, base)
	}
	os.MkdirAll(base, 0o755)
	os.WriteFile(filepath.Join(base, "old_1.0_amd64.deb"), []byte("old"), 0o644)
	dirB, err := b.AptCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	if dirB != base+".1" {
		t.Fatalf("the second build uses %s, want %s", dirB, base+".1")
	}
	// The initramfs cache is one for both (keyed by content).
	for _, x := range []*Build{a, b} {
		if d, err := x.initramfsCacheDir(); err != nil || d != filepath.Join(imageCache, "initramfs", "debian-bookworm-amd64") {
			t.Errorf("initramfs cache %s (%v), want the one of the unslotted apt cache", d, err)
		}
	}
	if again, _ := b.AptCacheDir(); again != dirB {
		t.Errorf("a build's copy changed: %s", again)
	}
	if data, err := os.ReadFile(filepath.Join(dirB, "old_1.0_amd64.deb")); err != nil || string(data) != "old" {
		t.Errorf("the copy is not seeded with the cache's packages: %v", err)
	}
	os.WriteFile(filepath.Join(dirB, "new_2.0_amd64.deb"), []byte("new"), 0o644)
	if err := b.Stack.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(base, "new_2.0_amd64.deb")); err != nil {
		t.Errorf("what the second build downloaded is not in the cache: %v", err)
	}
	if err := a.Stack.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if locks, _ := filepath.Glob(filepath.Join(imageCache, "apt", "*.lock")); len(locks) != 0 {
		t.Errorf("lock files left: %v", locks)
	}
	if d, _ := build().AptCacheDir(); d != base {
		t.Errorf("a later build uses %s", d)
	}
}
