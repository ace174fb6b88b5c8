package cache

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/dibuild/dib/runtime/ns/nstest"
	"golang.org/x/sys/unix"
)

// describe lists every property a snapshot must keep, one line per path:
// type, mode, owner, size, allocated-vs-apparent (sparse), data digest,
// link target, device numbers, inode group (hard links), xattrs, mtime.
func describe(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	inodes := map[uint64]string{}
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		l := fmt.Sprintf("%s type=%o mode=%o uid=%d gid=%d", rel, st.Mode&unix.S_IFMT, st.Mode&0o7777, st.Uid, st.Gid)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			l += fmt.Sprintf(" size=%d data=%x sparse=%v", st.Size, sha(data), st.Blocks*512 < st.Size)
			if st.Nlink > 1 {
				if first, ok := inodes[st.Ino]; ok {
					l += " same-inode-as=" + first
				} else {
					inodes[st.Ino] = rel
				}
			}
			l += fmt.Sprintf(" mtime=%d.%09d", st.Mtim.Sec, st.Mtim.Nsec)
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			l += " -> " + target
		case unix.S_IFCHR, unix.S_IFBLK:
			l += fmt.Sprintf(" dev=%d,%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		case unix.S_IFDIR:
			l += fmt.Sprintf(" mtime=%d.%09d", st.Mtim.Sec, st.Mtim.Nsec)
		}
		xs, err := readXattrs(p)
		if err != nil {
			return err
		}
		var keys []string
		for k := range xs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			l += fmt.Sprintf(" xattr:%s=%x", k, xs[k])
		}
		lines = append(lines, l)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

func sha(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:8]
}

// makeTree builds a tree with every property snapshots must keep.
func makeTree(t *testing.T, root string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "etc/sub"), 0o755))
	must(os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/bash\n"), 0o644))
	must(os.WriteFile(filepath.Join(root, "etc/shadow"), []byte("secret\n"), 0o640))
	must(os.Lchown(filepath.Join(root, "etc/shadow"), 0, 42))
	// Owners, setuid/setgid/sticky.
	must(os.WriteFile(filepath.Join(root, "suid"), []byte("#!/bin/sh\n"), 0o755))
	must(os.Chown(filepath.Join(root, "suid"), 1000, 1001))
	must(unix.Chmod(filepath.Join(root, "suid"), 0o4755))
	must(os.Mkdir(filepath.Join(root, "tmp"), 0o755))
	must(unix.Chmod(filepath.Join(root, "tmp"), 0o1777))
	must(os.Mkdir(filepath.Join(root, "setgid"), 0o755))
	must(os.Chown(filepath.Join(root, "setgid"), 7, 8))
	must(unix.Chmod(filepath.Join(root, "setgid"), 0o2775))
	// Hard links, symlinks (relative, absolute, dangling), an empty file.
	must(os.WriteFile(filepath.Join(root, "etc/a"), []byte("hard"), 0o600))
	must(os.Link(filepath.Join(root, "etc/a"), filepath.Join(root, "etc/sub/b")))
	must(os.Link(filepath.Join(root, "etc/a"), filepath.Join(root, "c")))
	must(os.Symlink("../passwd", filepath.Join(root, "etc/sub/rel")))
	must(os.Symlink("/etc/passwd", filepath.Join(root, "abs")))
	must(os.Symlink("/nowhere", filepath.Join(root, "dangling")))
	must(os.Lchown(filepath.Join(root, "abs"), 5, 6))
	must(os.WriteFile(filepath.Join(root, "empty"), nil, 0o444))
	// Devices and a FIFO.
	must(os.Mkdir(filepath.Join(root, "dev"), 0o755))
	must(unix.Mknod(filepath.Join(root, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(filepath.Join(root, "dev/loop9"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 9))))
	must(unix.Mkfifo(filepath.Join(root, "dev/fifo"), 0o600))
	// Extended attributes: a file capability (binary, with NUL bytes), a
	// trusted and a user attribute, a POSIX ACL.
	ping := filepath.Join(root, "ping")
	must(os.WriteFile(ping, []byte("ELF"), 0o755))
	capNetRaw := []byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	must(unix.Lsetxattr(ping, "security.capability", capNetRaw, 0))
	must(unix.Lsetxattr(ping, "trusted.dib", []byte("t\x00v"), 0))
	if err := unix.Lsetxattr(ping, "user.dib", []byte("u"), 0); err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
		t.Fatal(err)
	}
	// A POSIX ACL (user 1234 may read), in the kernel's xattr format.
	acl := []byte{2, 0, 0, 0}
	for _, e := range [][3]uint32{{0x01, 6, 0xffffffff}, {0x02, 4, 1234}, {0x04, 4, 0xffffffff}, {0x10, 4, 0xffffffff}, {0x20, 4, 0xffffffff}} {
		acl = binary.LittleEndian.AppendUint16(acl, uint16(e[0]))
		acl = binary.LittleEndian.AppendUint16(acl, uint16(e[1]))
		acl = binary.LittleEndian.AppendUint32(acl, e[2])
	}
	must(unix.Lsetxattr(filepath.Join(root, "etc/passwd"), "system.posix_acl_access", acl, 0))
	// Sparse files: holes at the start, the middle and the end, and one
	// that is a hole only.
	sp, err := os.Create(filepath.Join(root, "sparse"))
	must(err)
	_, err = sp.WriteAt(bytes.Repeat([]byte("x"), 8192), 1<<20)
	must(err)
	_, err = sp.WriteAt([]byte("tail"), 5<<20)
	must(err)
	must(sp.Truncate(9 << 20))
	must(sp.Close())
	must(os.WriteFile(filepath.Join(root, "holes"), nil, 0o644))
	must(os.Truncate(filepath.Join(root, "holes"), 3<<20))
	// Times: a file and a directory with nanosecond mtimes.
	ts := []unix.Timespec{{Sec: 1000000000, Nsec: 123456789}, {Sec: 1000000000, Nsec: 123456789}}
	must(unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(root, "etc/passwd"), ts, 0))
	must(unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(root, "etc/sub"), ts, 0))
	must(unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(root, "abs"), ts, unix.AT_SYMLINK_NOFOLLOW))
}

// tmpfsDir returns an empty directory on a fresh tmpfs (sparse files,
// xattrs and devices behave as in a build's tmpfs workspace).
func tmpfsDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	if err := unix.Mount("tmpfs", d, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(d, unix.MNT_DETACH) })
	return d
}

func TestMain(m *testing.M) { nstest.Main(m) }

func TestSnapshotKeepsEveryProperty(t *testing.T) {
	nstest.RequireRoot(t)
	for _, fs := range []string{"tmpfs", "disk"} {
		t.Run(fs, func(t *testing.T) {
			src, dst := t.TempDir(), t.TempDir()
			if fs == "tmpfs" {
				src, dst = tmpfsDir(t), tmpfsDir(t)
			}
			makeTree(t, src)
			want := describe(t, src)
			for _, must := range []string{"mode=4755 uid=1000 gid=1001", "mode=1777", "mode=2775", "same-inode-as=c", "dev=1,3", "dev=7,9",
				"type=10000", "xattr:security.capability=", "xattr:system.posix_acl_access=", "xattr:trusted.dib=74007", "sparse=true"} {
				if !strings.Contains(want, must) {
					t.Fatalf("test tree lacks %q:\n%s", must, want)
				}
			}
			// The payload as written now (plain tar) and as older
			// versions wrote it (zstd): RestoreTree reads either.
			for _, name := range []string{TreeArchive, "tree.tar.zst"} {
				c, err := Open(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				w, err := c.Begin(Meta{Key: strings.Repeat("ab", 32)})
				if err != nil {
					t.Fatal(err)
				}
				if err := w.AddTree(name, src); err != nil {
					t.Fatal(err)
				}
				w.SetSnapshot(Snapshot{Tree: "built"})
				m, err := w.Commit()
				if err != nil {
					t.Fatal(err)
				}
				if m.Archive("tree") != name {
					t.Errorf("Archive(tree) = %q, want %q", m.Archive("tree"), name)
				}
				out := filepath.Join(dst, name)
				if err := os.Mkdir(out, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := c.RestoreTree(m, out); err != nil {
					t.Fatal(err)
				}
				if got := describe(t, out); got != want {
					t.Errorf("%s: restored tree differs:\n--- got\n%s\n--- want\n%s", name, got, want)
				}
				// The archive stores the sparse file's data only.
				if m.Size() > 1<<20 {
					t.Errorf("%s: snapshot is %d bytes: holes were stored", name, m.Size())
				}
			}
		})
	}
}

func TestSnapshotSkipsMounts(t *testing.T) {
	nstest.RequireRoot(t)
	src, dst := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "var/cache/apt/archives"), 0o755); err != nil {
		t.Fatal(err)
	}
	archive := tmpfsDir(t)
	os.WriteFile(filepath.Join(archive, "big.deb"), []byte("package"), 0o644)
	if err := unix.Mount(archive, filepath.Join(src, "var/cache/apt/archives"), "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(filepath.Join(src, "var/cache/apt/archives"), unix.MNT_DETACH)
	// A bind mount of a directory of the tree's own filesystem: same
	// device number, still a mount.
	same := filepath.Join(filepath.Dir(src), "same-fs")
	os.MkdirAll(same, 0o755)
	os.WriteFile(filepath.Join(same, "big.deb"), []byte("package"), 0o644)
	os.MkdirAll(filepath.Join(src, "var/cache/dnf"), 0o755)
	if err := unix.Mount(same, filepath.Join(src, "var/cache/dnf"), "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(filepath.Join(src, "var/cache/dnf"), unix.MNT_DETACH)
	var buf bytes.Buffer
	if err := WriteTree(&buf, src); err != nil {
		t.Fatal(err)
	}
	if err := extract(&buf, dst, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dst, "var/cache/apt/archives")); err != nil {
		t.Errorf("mount point not kept: %v", err)
	}
	for _, d := range []string{"var/cache/apt/archives", "var/cache/dnf"} {
		if _, err := os.Stat(filepath.Join(dst, d, "big.deb")); err == nil {
			t.Errorf("what is mounted at %s entered the snapshot", d)
		}
	}
}

func TestExtractRefusesEscapes(t *testing.T) {
	nstest.RequireRoot(t)
	dst := t.TempDir()
	// A forged stream: a symlink to / and a file through it.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: ".", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "/"})
	tw.WriteHeader(&tar.Header{Name: "up/tmp/dib-evil", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
	tw.Write([]byte("x"))
	tw.Close()
	if err := extract(&buf, dst, false); err == nil {
		t.Fatal("extracted a name through a symlink")
	}
	if _, err := os.Stat("/tmp/dib-evil"); err == nil {
		os.Remove("/tmp/dib-evil")
		t.Fatal("wrote outside the tree")
	}
}
