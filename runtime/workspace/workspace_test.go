package workspace

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dibuild/dib/runtime/mount"
	"github.com/dibuild/dib/runtime/stack"
)

func TestUseTmpfs(t *testing.T) {
	const gib = 1024 * 1024
	tests := []struct {
		name  string
		mem   int64
		no    bool
		min   int
		tmpfs bool
	}{
		{"4GiB default", 4 * gib, false, 0, true},
		{"just under 4GiB", 4*gib - 1, false, 0, false},
		{"no-tmpfs", 64 * gib, true, 0, false},
		{"min-tmpfs 8 needs 16GiB", 15 * gib, false, 8, false},
		{"min-tmpfs 8 with 16GiB", 16 * gib, false, 8, true},
		{"unknown memory", 0, false, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := UseTmpfs(tt.mem, tt.no, tt.min); got != tt.tmpfs {
				t.Errorf("UseTmpfs = %v", got)
			}
		})
	}
}

func TestMemTotalKB(t *testing.T) {
	if got := MemTotalKB([]byte("MemFree: 5 kB\nMemTotal:       24684096 kB\n")); got != 24684096 {
		t.Errorf("got %d", got)
	}
	if MemTotalKB(nil) != 0 {
		t.Error("empty")
	}
}

func TestCreateOnDisk(t *testing.T) {
	parent := t.TempDir()
	var st stack.Stack
	w, err := Create(&st, Options{WorkDir: parent, NoTmpfs: true})
	if err != nil {
		t.Fatal(err)
	}
	if w.Tmpfs {
		t.Error("tmpfs with NoTmpfs")
	}
	if !strings.HasPrefix(filepath.Base(w.BuildDir), "dib_build.") || w.BuiltPath != filepath.Join(w.BuildDir, "built") ||
		w.MountPath != filepath.Join(w.BuildDir, "mnt") || w.Tree() != w.MountPath || w.HooksPath != filepath.Join(w.BuildDir, "hooks") ||
		w.ImagePath != filepath.Join(w.ImageDir, "image.raw") {
		t.Errorf("layout %+v", w)
	}
	for _, d := range []string{w.MountPath, w.HooksPath, w.ImageDir} {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			t.Errorf("%s: %v", d, err)
		}
	}
	// DIB creates built/ only when it moves the tree there.
	if _, err := os.Stat(w.BuiltPath); err == nil {
		t.Error("built/ exists before the disk step")
	}
	// The tree is TMP_MOUNT_PATH, which root.d and cleanup.d see as TARGET_ROOT.
	if env := w.Env(); len(env) != 6 || env[0] != "TARGET_ROOT="+w.MountPath || env[5] != "TMP_MOUNT_PATH="+w.MountPath {
		t.Errorf("env %q", env)
	}
	if err := st.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}

func TestCreateTmpfsAndSafeRemoval(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
			t.Fatal("needs root")
		}
		t.Skip("needs root to mount a tmpfs")
	}
	parent := t.TempDir()
	victim := t.TempDir()
	if err := os.WriteFile(filepath.Join(victim, "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var st stack.Stack
	w, err := Create(&st, Options{WorkDir: parent, MemTotalKB: 8 * 1024 * 1024})
	if err != nil {
		t.Fatal(err)
	}
	if pts, _ := mount.Under(w.BuildDir); !w.Tmpfs || !slices.Contains(pts, filepath.Clean(w.BuildDir)) {
		t.Fatal("no tmpfs")
	}
	// A bind left behind by a failed step must be unmounted, not deleted through.
	if err := os.Mkdir(filepath.Join(w.Tree(), "proc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := mount.Bind(victim, filepath.Join(w.Tree(), "proc"), false, false); err != nil {
		t.Fatal(err)
	}
	if err := st.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(victim, "keep")); err != nil {
		t.Errorf("removal went through a bind mount: %v", err)
	}
	if pts, _ := mount.Under(parent); len(pts) != 0 {
		t.Errorf("mounts left: %v", pts)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}

// TestCreateRelativeWorkDir: a relative work directory (`--work-dir
// work`) gives absolute paths, and the release unmounts the tmpfs and
// removes everything (it once looked the relative path up in the mount
// table, found nothing, and left the directories behind).
func TestCreateRelativeWorkDir(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
			t.Fatal("needs root")
		}
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	t.Chdir(dir)
	var st stack.Stack
	w, err := Create(&st, Options{WorkDir: "work", MemTotalKB: 8 * 1024 * 1024})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{w.BuildDir, w.ImageDir, w.MountPath, w.HooksPath} {
		if !filepath.IsAbs(p) || !strings.HasPrefix(p, filepath.Join(dir, "work")+"/") {
			t.Errorf("%s: not an absolute path in the work directory", p)
		}
	}
	if err := st.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if pts, _ := mount.Under(dir); len(pts) != 0 {
		t.Errorf("mounts left: %v", pts)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "work")); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}
