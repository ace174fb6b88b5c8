package disk

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/runtime/internal/sentinel"
)

// TestEscapeNodeName: a block-device node name with "../" (issue: mkswap
// ran on a file outside the work directory, then deleted it) is refused
// before anything is written, and again where it becomes a path.
func TestEscapeNodeName(t *testing.T) {
	dir, snap := sentinel.New(t)
	work := t.TempDir()
	evil := filepath.Join(sentinel.Rel(t, work, dir), "evil")
	l := mbrLogicalLayout()
	for i := range l.Filesystems {
		if l.Filesystems[i].Type == "swap" {
			l.Filesystems[i].Node = evil
		}
	}
	out := filepath.Join(t.TempDir(), "disk.raw")
	_, err := Assemble(context.Background(), Input{Layout: l, Tree: makeTree(t), Output: out, WorkDir: work})
	if err == nil || !strings.Contains(err.Error(), "block-device node name") {
		t.Fatalf("Assemble: %v, want a refused node name", err)
	}
	if _, err := os.Stat(out + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("image file written: %v", err)
	}
	// The point of use checks on its own.
	a := &assembly{work: work}
	for _, n := range []string{evil, "..", "a/b", ""} {
		if p, err := a.workPath(n, ".swap"); err == nil {
			t.Errorf("workPath(%q) = %q", n, p)
		}
	}
	if p, err := a.workPath("mkfs_swap", ".swap"); err != nil || p != filepath.Join(work, "mkfs_swap.swap") {
		t.Errorf("workPath(mkfs_swap) = %q, %v", p, err)
	}
	snap.Unchanged(t, dir)
}

// TestEscapeMountPoint: mount_point "/../../tmp/x" (issue: a host
// directory was bound before mkfs failed) is refused by the assembly and
// by Mount, before any loop device or mount.
func TestEscapeMountPoint(t *testing.T) {
	dir, snap := sentinel.New(t)
	tree := makeTree(t)
	bad := "/" + sentinel.Rel(t, tree, filepath.Join(dir, "x"))
	l := efiLayout(256)
	for i := range l.Filesystems {
		if l.Filesystems[i].Node == "mkfs_ESP" {
			l.Filesystems[i].MountPoint = bad
		}
	}
	out := filepath.Join(t.TempDir(), "disk.raw")
	_, err := Assemble(context.Background(), Input{Layout: l, Tree: tree, Output: out, WorkDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), `".." component`) {
		t.Fatalf("Assemble: %v, want a refused mount point", err)
	}
	a := &assembly{in: Input{Layout: l, Tree: tree}}
	if src, _, err := a.source(bad); err == nil {
		t.Errorf("source(%q) = %q", bad, src)
	}
	// A symlink in the tree resolves inside it, as in the image.
	if err := os.Symlink(dir, filepath.Join(tree, "linked")); err != nil {
		t.Fatal(err)
	}
	if src, _, err := a.source("/linked"); err != nil || !strings.HasPrefix(src, tree+"/") {
		t.Errorf("source(/linked) = %q, %v; want inside the tree", src, err)
	}
	mnt := t.TempDir()
	one := &layout.Layout{
		Filesystems: []layout.Filesystem{{Node: "mkfs_p1", Base: "p1", Type: "ext4", MountPoint: "/" + sentinel.Rel(t, mnt, dir)}},
		Mounts:      []layout.Mount{{Node: "mount_mkfs_p1", MountPoint: "/" + sentinel.Rel(t, mnt, dir), Filesystem: "mkfs_p1"}},
	}
	_, err = Mount(context.Background(), MountInput{Layout: one, Image: out, Dir: mnt,
		Volumes: []Volume{{Node: "p1", Offset: 0, Size: 1 << 20}}})
	if err == nil || !strings.Contains(err.Error(), `".." component`) {
		t.Fatalf("Mount: %v, want a refused mount point", err)
	}
	snap.Unchanged(t, dir)
}

// TestEscapeFstab: an image whose /etc links to a host directory gets its
// fstab inside the image, never in the host directory.
func TestEscapeFstab(t *testing.T) {
	dir, snap := sentinel.New(t)
	root := t.TempDir()
	if err := os.Symlink(dir, filepath.Join(root, "etc")); err != nil {
		t.Fatal(err)
	}
	l := efiLayout(256)
	l.Fstab = []layout.FstabEntry{{Line: "LABEL=x / ext4 defaults 0 1"}}
	if err := WriteFstab(root, l); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, dir, "fstab")); err != nil {
		t.Errorf("fstab not written inside the image: %v", err)
	}
	snap.Unchanged(t, dir)
}
