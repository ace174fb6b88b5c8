package safepath

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestName(t *testing.T) {
	for _, ok := range []string{"root", "mkfs_root", "debian-vm", "a.b", "..a", "é"} {
		if err := Name("node", ok); err != nil {
			t.Errorf("Name(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "../../../../tmp/x/evil", "a/b", "/abs", "a\x00b", strings.Repeat("x", 256)} {
		err := Name("block-device node name", bad)
		var e *Error
		if !errors.As(err, &e) || e.Kind != "block-device node name" {
			t.Errorf("Name(%q) = %v, want an *Error", bad, err)
		}
	}
}

func TestUnder(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	must(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	must(t, os.Symlink(outside, filepath.Join(dir, "out-abs")))
	must(t, os.Symlink("../"+filepath.Base(outside), filepath.Join(dir, "out-rel")))
	must(t, os.Symlink("sub", filepath.Join(dir, "in-rel")))
	must(t, os.Symlink(filepath.Join(dir, "sub"), filepath.Join(dir, "in-abs")))
	for _, ok := range []string{"debian-vm.qcow2", "sub/x", "in-rel/x", "in-abs/x", "new/dir/file", "./a"} {
		got, err := Under("output path", dir, ok)
		if err != nil {
			t.Errorf("Under(%q): %v", ok, err)
		} else if got != filepath.Join(dir, ok) {
			t.Errorf("Under(%q) = %q", ok, got)
		}
	}
	for _, bad := range []string{"../../../tmp/x/ESCAPED", "/etc/passwd", "a/../../b", "out-abs/x", "out-rel/x", "", ".", "a\x00"} {
		if got, err := Under("output path", dir, bad); err == nil {
			t.Errorf("Under(%q) = %q, want an error", bad, got)
		}
	}
	// dir itself may be a symlink.
	link := filepath.Join(outside, "link-to-dir")
	must(t, os.Symlink(dir, link))
	if _, err := Under("output path", link, "in-abs/x"); err != nil {
		t.Errorf("through a symlinked dir: %v", err)
	}
}

func TestInRoot(t *testing.T) {
	root := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "boot/efi"), 0o755))
	must(t, os.MkdirAll(filepath.Join(root, "run"), 0o755))
	must(t, os.Symlink("/../../../../tmp", filepath.Join(root, "evil")))
	must(t, os.Symlink("../../..", filepath.Join(root, "boot/up")))
	must(t, os.Symlink("/run", filepath.Join(root, "varrun")))
	must(t, os.Symlink("loop", filepath.Join(root, "loop")))
	cases := map[string]string{
		"/":           root,
		"/boot/efi":   filepath.Join(root, "boot/efi"),
		"boot":        filepath.Join(root, "boot"),
		"/evil/x":     filepath.Join(root, "tmp/x"), // a link is resolved as in the chroot
		"/boot/up/x":  filepath.Join(root, "x"),
		"/varrun/dib": filepath.Join(root, "run/dib"),
		"/new/a/b":    filepath.Join(root, "new/a/b"),
	}
	for in, want := range cases {
		got, err := InRoot("mount point", root, in)
		if err != nil || got != want {
			t.Errorf("InRoot(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"/../../tmp/x", "a/../../b", "/loop/x", "x\x00"} {
		if got, err := InRoot("mount point", root, bad); err == nil {
			t.Errorf("InRoot(%q) = %q, want an error", bad, got)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
