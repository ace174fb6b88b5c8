package mount

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"syscall"
	"testing"
)

const table = `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
29 22 0:10 / /tmp/b rw - tmpfs tmpfs rw
30 22 0:5 / /tmp/b/built/dev rw shared:2 - devtmpfs udev rw
31 30 0:6 / /tmp/b/built/dev/pts rw shared:3 - devpts devpts rw
32 22 0:7 / /tmp/b/built/proc rw - proc proc rw
33 22 0:8 / /tmp/b/built\040x rw - tmpfs tmpfs rw
34 22 0:9 / /tmp/bb rw - tmpfs tmpfs rw
`

func TestUnder(t *testing.T) {
	tests := []struct {
		dir  string
		want []string
	}{
		{"/tmp/b", []string{"/tmp/b/built x", "/tmp/b/built/proc", "/tmp/b/built/dev/pts", "/tmp/b/built/dev", "/tmp/b"}},
		{"/tmp/b/built/", []string{"/tmp/b/built/proc", "/tmp/b/built/dev/pts", "/tmp/b/built/dev"}},
		{"/tmp/c", nil},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			if got := under([]byte(table), tt.dir); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("under(%q) = %q, want %q", tt.dir, got, tt.want)
			}
		})
	}
}

// TestUnderRelative: a relative directory is looked up as the absolute
// path it names (the table holds absolute paths).
func TestUnderRelative(t *testing.T) {
	t.Chdir("/tmp")
	if got, want := under([]byte(table), "b"), under([]byte(table), "/tmp/b"); len(want) == 0 || !reflect.DeepEqual(got, want) {
		t.Errorf("under(%q) = %q, want %q", "b", got, want)
	}
}

func TestUnmountAll(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
			t.Fatal("needs root")
		}
		t.Skip("needs root")
	}
	dir := t.TempDir()
	inner := filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	// Run in a throwaway mount namespace is not possible per-thread in Go;
	// these mounts are on the test's private tmp dir and removed below.
	if err := FS("tmpfs", "tmpfs", dir, "size=1m", 0); err != nil {
		t.Fatal(err)
	}
	_ = os.MkdirAll(inner, 0o755)
	if err := Bind("/proc", inner, false, true); err != nil {
		_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		t.Fatal(err)
	}
	if pts, _ := Under(inner); !slices.Contains(pts, filepath.Clean(inner)) {
		t.Fatal("bind not seen")
	}
	if err := UnmountAll(dir); err != nil {
		t.Fatal(err)
	}
	if pts, _ := Under(dir); len(pts) != 0 {
		t.Errorf("left: %v", pts)
	}
}

// TestUnmountAndRemove: the mount point is unmounted, then gone.
func TestUnmountAndRemove(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
			t.Fatal("needs root")
		}
		t.Skip("needs root")
	}
	dir := filepath.Join(t.TempDir(), "point")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := FS("tmpfs", "tmpfs", dir, "size=1m", 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := UnmountAndRemove(dir); err != nil {
		t.Fatal(err)
	}
	if pts, _ := Under(dir); len(pts) != 0 {
		t.Errorf("left mounted: %v", pts)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Errorf("mount point not removed: %v", err)
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/sys/fs/a\040b`: "/sys/fs/a b",
		`/a\011b\012c`:   "/a\tb\nc",
		`/a\134040`:      `/a\040`,
		`/x\0`:           `/x\0`, // cut short: kept
		`/x\09a`:         `/x\09a`,
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}
