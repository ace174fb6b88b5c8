package disk

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/internal/fixture"
	"github.com/dibuild/dib/runtime/mount"
	"github.com/dibuild/dib/runtime/qcow2"
	"github.com/dibuild/dib/runtime/sde"
)

const testEpoch = 1700000000 // 2023-11-14, older than any file the tests write
// nextFATTick waits until the clock is in a later 2-second FAT time step
// than since (the end of the first build), so two builds differ in every
// time they could pick up, FAT's included.
func nextFATTick(since time.Time) {
	for time.Now().Unix()/2 == since.Unix()/2 {
		time.Sleep(50 * time.Millisecond)
	}
}

// tmpfs mounts a tmpfs on a new temporary directory for the test.
func tmpfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := mount.FS("tmpfs", "dib-test", dir, "size=64m", 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mount.UnmountAll(dir) })
	return dir
}

// TestAssembleReproducible assembles the same tree twice, the second time
// from a copy made later (other change and access times, a modification
// time moved, all after SOURCE_DATE_EPOCH), and wants the same bytes: ext4
// (mke2fs -d, E2FSPROGS_FAKE_TIME, NormalizeExt), FAT (mkfs.vfat, mtools)
// and the GPT.
func TestAssembleReproducible(t *testing.T) {
	needHost(t, assemblyTools...)
	// Two trees with the same content on tmpfs, where readdir returns
	// entries in the order they were made: name order and reverse.
	tree, tree2 := filepath.Join(tmpfs(t), "tree"), filepath.Join(tmpfs(t), "tree")
	makeTreeIn(t, tree, false)
	// A package's file: older than SOURCE_DATE_EPOCH, it keeps its time.
	pkgFile, pkgTime := "usr/share/doc/dib/README", time.Unix(testEpoch-86400*365, 0)
	keepOld := func(root string) {
		if err := os.Chtimes(filepath.Join(root, pkgFile), pkgTime, pkgTime); err != nil {
			t.Fatal(err)
		}
	}
	keepOld(tree)
	// ext4 + FAT on GPT; ext2, ext3 (a journal of block maps) and swap
	// in logical partitions.
	// Epoch 0 too: libext2fs reads E2FSPROGS_FAKE_TIME=0 as no fake time.
	for _, c := range []struct {
		l     *layout.Layout
		epoch int64
	}{{efiLayout(256), testEpoch}, {mbrLogicalLayout(), testEpoch}, {efiLayout(256), 0}} {
		l := c.l
		dir := t.TempDir()
		a := filepath.Join(dir, "a.raw")
		ra, err := Assemble(context.Background(), Input{Layout: l, Tree: tree, Output: a, WorkDir: dir, SourceDateEpoch: c.epoch})
		if err != nil {
			t.Fatal(err)
		}
		// The second tree is made later: other change and access times.
		nextFATTick(time.Now())
		os.RemoveAll(tree2)
		makeTreeIn(t, tree2, true)
		keepOld(tree2)
		later := time.Now().Add(time.Hour)
		for _, p := range []string{"etc/os-release", "boot/efi/EFI/debian/grub.cfg"} {
			if err := os.Chtimes(filepath.Join(tree2, p), later, later); err != nil {
				t.Fatal(err)
			}
		}
		b := filepath.Join(dir, "b.raw")
		if _, err := Assemble(context.Background(), Input{Layout: l, Tree: tree2, Output: b, WorkDir: dir, SourceDateEpoch: c.epoch}); err != nil {
			t.Fatal(err)
		}
		for _, fs := range l.Filesystems {
			if strings.HasPrefix(fs.Type, "ext") {
				checkExt(t, a, volumeOf(t, ra, fs.Base).Offset, nil)
			}
		}
		root := volumeOf(t, ra, "root")
		ep := fmt.Sprintf("0x%08x:00000000", c.epoch)
		if out := sh(t, "debugfs", "-R", "stat /etc/os-release", fmt.Sprintf("%s?offset=%d", a, root.Offset)); !strings.Contains(out, "mtime: "+ep) ||
			!strings.Contains(out, "ctime: "+ep) || !strings.Contains(out, "crtime: "+ep) {
			t.Errorf("/etc/os-release times are not SOURCE_DATE_EPOCH:\n%s", out)
		}
		// Older than the epoch: its own time; with epoch 0, 0.
		pkgWant, _ := sde.Clamp(pkgTime.Unix(), 0, c.epoch)
		if out := sh(t, "debugfs", "-R", "stat /"+pkgFile, fmt.Sprintf("%s?offset=%d", a, root.Offset)); !strings.Contains(out, fmt.Sprintf("mtime: 0x%08x:00000000", pkgWant)) ||
			!strings.Contains(out, "ctime: "+ep) {
			t.Errorf("/%s: want mtime %d (its own %d clamped to %d) and ctime SOURCE_DATE_EPOCH:\n%s", pkgFile, pkgWant, pkgTime.Unix(), c.epoch, out)
		}
		if ha, hb := fixture.SHA256File(t, a), fixture.SHA256File(t, b); ha != hb {
			t.Errorf("same tree, two images:\n%s\n%s\n%s", ha, hb, cmpSummary(t, a, b, ra.Volumes))
		}
	}
}

// TestMountedImageReproducible replays the partition step's path (runtime/diskstep.go) over an assembled
// image twice: mount it, write as finalise.d and the bootloader do (new
// directories, one large enough for an htree, files deleted), unmount,
// zero the free blocks and normalize. The kernel stamps every inode it
// touches with the time and gives new ones random generations; the raw
// images and their qcow2 conversions must still be identical.
func TestMountedImageReproducible(t *testing.T) {
	needHost(t, assemblyTools...)
	l := efiLayout(256)
	tree := makeTree(t)
	dir := t.TempDir()
	var raws, qcows []string
	var vols []Volume
	for i, name := range []string{"a", "b"} {
		img := filepath.Join(dir, name+".raw")
		r, err := Assemble(context.Background(), Input{Layout: l, Tree: tree, Output: img, WorkDir: dir, SourceDateEpoch: testEpoch})
		if err != nil {
			t.Fatal(err)
		}
		vols = r.Volumes
		mnt := filepath.Join(dir, "mnt-"+name)
		os.Mkdir(mnt, 0o755)
		m, err := Mount(context.Background(), MountInput{Layout: l, Image: img, Volumes: r.Volumes, Dir: mnt})
		if err != nil {
			t.Fatal(err)
		}
		mounted(t, m, mnt, i)
		if _, err := m.Trim(); err != nil {
			t.Error(err)
		}
		if err := m.Unmount(context.Background()); err != nil {
			t.Fatal(err)
		}
		done, err := Finish(context.Background(), nil, img, l, r.Volumes, testEpoch)
		if err != nil || len(done.NotNormalized) > 0 {
			t.Fatal(err, done.NotNormalized)
		}
		rootfs := fmt.Sprintf("%s?offset=%d", img, volumeOf(t, r, "root").Offset)
		checkExt(t, img, volumeOf(t, r, "root").Offset, map[string]string{"/boot/grub/grub.cfg": "menuentry x {}\n"})
		if out := sh(t, "debugfs", "-R", "stat /var/fragmented", rootfs); !strings.Contains(out, "(ETB0)") {
			t.Errorf("/var/fragmented has no extent-tree block:\n%s", out)
		}
		// The inode's extent slots past the header's entry count are zero.
		ino := inodeDump(t, rootfs, "/var/fragmented")
		used := 0x28 + 12 + 12*int(ino[0x2a])
		if !allZero(ino[used:0x64]) {
			t.Errorf("stale extent slots in /var/fragmented's inode: % x", ino[used:0x64])
		}
		q := filepath.Join(dir, name+".qcow2")
		if _, err := qcow2.Convert(context.Background(), img, q, qcow2.Options{}); err != nil {
			t.Fatal(err)
		}
		raws, qcows = append(raws, img), append(qcows, q)
		nextFATTick(time.Now())
	}
	if ha, hb := fixture.SHA256File(t, raws[0]), fixture.SHA256File(t, raws[1]); ha != hb {
		t.Errorf("raw images differ:\n%s\n%s\n%s", ha, hb, cmpSummary(t, raws[0], raws[1], vols))
	} else {
		t.Logf("raw sha256 %s", ha)
	}
	if ha, hb := fixture.SHA256File(t, qcows[0]), fixture.SHA256File(t, qcows[1]); ha != hb {
		t.Errorf("qcow2 images differ:\n%s\n%s", ha, hb)
	} else {
		t.Logf("qcow2 sha256 %s", ha)
	}
}

// mounted writes into the mounted image what a build's late phases do.
// run is 0 or 1: the second run reads a file first (access times).
func mounted(t *testing.T, m *Mounted, root string, run int) {
	t.Helper()
	if run == 1 {
		if _, err := os.ReadFile(filepath.Join(root, "etc/hostname")); err != nil {
			t.Fatal(err)
		}
	}
	grub := filepath.Join(root, "boot/grub/i386-pc")
	if err := os.MkdirAll(grub, 0o755); err != nil {
		t.Fatal(err)
	}
	// 300 entries with long names: more than one 4 KiB block, an htree.
	// The first run writes them all from one CPU, the second from two in
	// turn: ext4's per-CPU preallocation would place them differently.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatal(err)
	}
	defer unix.SchedSetaffinity(0, &all)
	var cpus []int
	for c := 0; c < 1024 && len(cpus) < 2; c++ {
		if all.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	for k := 0; k < 300; k++ {
		var one unix.CPUSet
		one.Set(cpus[run*k%len(cpus)])
		if err := unix.SchedSetaffinity(0, &one); err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("module-with-a-rather-long-name-%03d.mod", k)
		if err := os.WriteFile(filepath.Join(grub, name), []byte(strings.Repeat(name, k)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "boot/grub/grub.cfg"), []byte("menuentry x {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/fstab"), []byte("LABEL=cloudimg-rootfs / ext4 defaults 0 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Every other block written: 12 extents, more than the inode holds,
	// so an extent-tree block (its checksum seeded by the generation).
	frag, err := os.Create(filepath.Join(root, "var/fragmented"))
	if err != nil {
		t.Fatal(err)
	}
	for k := int64(0); k < 12; k++ {
		if _, err := frag.WriteAt([]byte(strings.Repeat("f", 4096)), 2*k*4096); err != nil {
			t.Fatal(err)
		}
		// Five extents allocated: the tree grows a level and the
		// inode's unused slots keep stale extents.
		if k == 4 {
			if err := frag.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := frag.Close(); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(root, "var/tmp-build")
	if err := os.WriteFile(tmp, []byte(strings.Repeat("x", 100000)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "usr/share/doc/dib/README")); err != nil {
		t.Fatal(err)
	}
}

// cmpSummary says which volumes and 4 KiB blocks of two images differ.
func cmpSummary(t *testing.T, a, b string, vols []Volume) string {
	t.Helper()
	fa, err := os.ReadFile(a)
	if err != nil {
		return err.Error()
	}
	fb, err := os.ReadFile(b)
	if err != nil {
		return err.Error()
	}
	var s strings.Builder
	n := 0
	for off := 0; off < len(fa) && off < len(fb) && n < 20; off += 4096 {
		end := min(off+4096, len(fa), len(fb))
		if string(fa[off:end]) == string(fb[off:end]) {
			continue
		}
		where := "outside any volume"
		for _, v := range vols {
			if int64(off) >= v.Offset && int64(off) < v.Offset+v.Size && v.Node != "image0" {
				where = fmt.Sprintf("%s block %d", v.Node, (int64(off)-v.Offset)/4096)
			}
		}
		fmt.Fprintf(&s, "  differ at %d (%s)\n", off, where)
		n++
	}
	return s.String()
}

// TestNormalizeExtLeavesUnsupportedAlone: a filesystem with a feature
// NormalizeExt does not handle (inline data) is reported and not changed.
func TestNormalizeExtLeavesUnsupportedAlone(t *testing.T) {
	img := filepath.Join(t.TempDir(), "fs.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 16<<20); err != nil {
		t.Fatal(err)
	}
	sh(t, "mke2fs", "-q", "-F", "-t", "ext4", "-O", "inline_data", img)
	before := fixture.SHA256File(t, img)
	err := NormalizeExt(img, 0, testEpoch)
	if !errors.Is(err, ErrExtUnsupported) {
		t.Fatalf("NormalizeExt: %v, want ErrExtUnsupported", err)
	}
	if fixture.SHA256File(t, img) != before {
		t.Error("the filesystem was changed")
	}
}

// inodeDump returns the raw inode of path in the filesystem dev, from
// debugfs's inode_dump: lines of 16 bytes at octal offsets, a repeated
// line shown once and then "*".
func inodeDump(t *testing.T, dev, path string) []byte {
	t.Helper()
	var raw, last []byte
	repeat := false
	for _, line := range strings.Split(sh(t, "debugfs", "-R", "inode_dump "+path, dev), "\n") {
		f := strings.Fields(line)
		if len(f) == 1 && f[0] == "*" {
			repeat = true
			continue
		}
		if len(f) < 9 {
			continue
		}
		off, err := strconv.ParseInt(f[0], 8, 64)
		if err != nil {
			t.Fatalf("inode_dump line %q", line)
		}
		for repeat && int64(len(raw)) < off {
			raw = append(raw, last...)
		}
		repeat = false
		last = nil
		for _, w := range f[1:9] {
			b, err := hex.DecodeString(w)
			if err != nil || len(b) != 2 {
				t.Fatalf("inode_dump line %q", line)
			}
			last = append(last, b...)
		}
		if int64(len(raw)) != off {
			t.Fatalf("inode_dump: offset %d after %d bytes", off, len(raw))
		}
		raw = append(raw, last...)
	}
	if len(raw) < 0x80 {
		t.Fatalf("inode_dump of %s: %d bytes", path, len(raw))
	}
	return raw
}
