package disk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/runtime/mount"
)

// needHost skips when the test cannot run here (not root, tools missing),
// except under DIB_REQUIRE_INTEGRATION=1 where that is a failure.
func needHost(tb testing.TB, tools ...string) {
	tb.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "needs " + strings.Join(missing, ", ") + " (Debian: gdisk fdisk dosfstools mtools e2fsprogs xfsprogs lvm2)"
	if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
}

var assemblyTools = []string{"mke2fs", "mkfs.vfat", "mcopy", "mkswap", "losetup", "sfdisk", "sgdisk", "e2fsck", "debugfs", "fsck.vfat", "mtype"}

// makeTree writes a small root tree with content for the ESP.
func makeTree(t testing.TB) string {
	t.Helper()
	return makeTreeIn(t, filepath.Join(t.TempDir(), "tree"), false)
}

// makeTreeIn writes makeTree's tree at root, its files made in name order
// or, with reverse, in the reverse order (on tmpfs, readdir's order).
func makeTreeIn(t testing.TB, root string, reverse bool) string {
	t.Helper()
	files := map[string]string{
		"etc/hostname":                  "dib-test\n",
		"etc/os-release":                "ID=debian\n",
		"boot/efi/EFI/BOOT/BOOTX64.EFI": "not really an EFI binary\n",
		"boot/efi/EFI/debian/grub.cfg":  "search --fs-uuid x\n",
		"var/lib/dib/data":              strings.Repeat("var content\n", 1000),
		"usr/share/doc/dib/README":      "hello\n",
		"boot/vmlinuz-0.0.0":            "kernel\n",
	}
	names := slices.Sorted(maps.Keys(files))
	if reverse {
		slices.Reverse(names)
	}
	for _, p := range names {
		c := files[p]
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../usr/share/doc/dib/README", filepath.Join(root, "etc/readme")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(root, "etc/hostname"), filepath.Join(root, "etc/hostname.hardlink")); err != nil {
		t.Fatal(err)
	}
	return root
}

func sh(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// sfdiskTable is the part of `sfdisk --json` the tests compare.
type sfdiskTable struct {
	PartitionTable struct {
		Label      string `json:"label"`
		ID         string `json:"id"`
		SectorSize int    `json:"sectorsize"`
		Partitions []struct {
			Node  string `json:"node"`
			Start int64  `json:"start"`
			Size  int64  `json:"size"`
			Type  string `json:"type"`
			UUID  string `json:"uuid"`
			Name  string `json:"name"`
			Boot  bool   `json:"bootable"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

// checkTable compares `sfdisk --json` of img with the layout's table.
func checkTable(t *testing.T, img string, lt *layout.PartitionTable) {
	t.Helper()
	var st sfdiskTable
	// 4K-sector images are read as 4K disks (a loop device with
	// --sector-size for sgdisk, which has no such option for files).
	dev := img
	if lt.SectorSize != 512 {
		dev = strings.TrimSpace(sh(t, "losetup", "--find", "--show", "--read-only", "--sector-size", fmt.Sprint(lt.SectorSize), img))
		defer sh(t, "losetup", "-d", dev)
	}
	if err := json.Unmarshal([]byte(sh(t, "sfdisk", "--json", dev)), &st); err != nil {
		t.Fatal(err)
	}
	if st.PartitionTable.SectorSize != 0 && st.PartitionTable.SectorSize != lt.SectorSize {
		t.Errorf("sector size %d, want %d", st.PartitionTable.SectorSize, lt.SectorSize)
	}
	pt := st.PartitionTable
	type row struct {
		node        string
		start, size int64
		typ         string
		boot        bool
	}
	var want, got []row
	num := func(dev string) string { return strings.TrimPrefix(dev, lt.Base) }
	for _, p := range pt.Partitions {
		// sfdisk names partitions FILE<n>, the layout IMAGENODE<n>.
		n := strings.TrimPrefix(strings.TrimPrefix(filepath.Base(p.Node), filepath.Base(dev)), "p")
		got = append(got, row{n, p.Start, p.Size, strings.ToUpper(p.Type), p.Boot})
	}
	switch lt.Label {
	case layout.LabelGPT:
		if pt.Label != "gpt" || !strings.EqualFold(pt.ID, lt.DiskGUID) {
			t.Errorf("label %s id %s, want gpt %s", pt.Label, pt.ID, lt.DiskGUID)
		}
		for i, p := range lt.Partitions {
			want = append(want, row{num(p.DeviceNode), p.Start, p.Size, p.GPTType, false})
			if i < len(pt.Partitions) && (!strings.EqualFold(pt.Partitions[i].UUID, p.GPTGUID) || pt.Partitions[i].Name != p.GPTName) {
				t.Errorf("partition %d: uuid %s name %s, want %s %s", i+1, pt.Partitions[i].UUID, pt.Partitions[i].Name, p.GPTGUID, p.GPTName)
			}
		}
		if out := sh(t, "sgdisk", "-v", dev); !strings.Contains(out, "No problems found") {
			t.Errorf("sgdisk -v:\n%s", out)
		}
	case layout.LabelMBR:
		if pt.Label != "dos" || pt.ID != fmt.Sprintf("0x%08x", lt.MBRDiskID) {
			t.Errorf("label %s id %s, want dos 0x%08x", pt.Label, pt.ID, lt.MBRDiskID)
		}
		var logical []row
		for _, p := range lt.Partitions {
			r := row{num(p.DeviceNode), p.Start, p.Size, strings.ToUpper(fmt.Sprintf("%x", p.MBRType)), p.Boot}
			if p.Kind == layout.KindLogical {
				logical = append(logical, r)
			} else {
				want = append(want, r)
			}
		}
		if e := lt.Extended; e != nil {
			want = append(want, row{num(e.DeviceNode), e.Start, e.Size, strings.ToUpper(fmt.Sprintf("%x", e.Type)), false})
		}
		want = append(want, logical...)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("sfdisk --json partitions\n got %v\nwant %v", got, want)
	}
}

func checkExt(t *testing.T, img string, off int64, files map[string]string) {
	t.Helper()
	dev := fmt.Sprintf("%s?offset=%d", img, off)
	sh(t, "e2fsck", "-fn", dev)
	for p, want := range files {
		got, err := exec.Command("debugfs", "-R", "cat "+p, dev).Output()
		if err != nil || string(got) != want {
			t.Errorf("%s: %d bytes (%v), want %d bytes %.20q", p, len(got), err, len(want), want)
		}
	}
}

func checkVfat(t *testing.T, img string, off, size int64, files map[string]string) {
	t.Helper()
	dev := strings.TrimSpace(sh(t, "losetup", "--find", "--show", "--read-only", "-o", fmt.Sprint(off), "--sizelimit", fmt.Sprint(size), img))
	defer sh(t, "losetup", "-d", dev)
	sh(t, "fsck.vfat", "-n", dev)
	for p, want := range files {
		cmd := exec.Command("mtype", "-i", fmt.Sprintf("%s@@%d", img, off), "::"+p)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		got, err := cmd.Output()
		if err != nil || string(got) != want {
			t.Errorf("%s: %q (%v), want %q", p, got, err, want)
		}
	}
}

func volumeOf(t *testing.T, r Result, node string) Volume {
	t.Helper()
	for _, v := range r.Volumes {
		if v.Node == node {
			return v
		}
	}
	t.Fatalf("no volume %s in %v", node, r.Volumes)
	return Volume{}
}

func TestAssembleLayouts(t *testing.T) {
	needHost(t, assemblyTools...)
	rootFiles := map[string]string{"/etc/hostname": "dib-test\n", "/etc/hostname.hardlink": "dib-test\n", "/usr/share/doc/dib/README": "hello\n"}
	espFiles := map[string]string{"/EFI/BOOT/BOOTX64.EFI": "not really an EFI binary\n"}
	cases := []struct {
		name   string
		layout *layout.Layout
		check  func(t *testing.T, img string, r Result)
	}{
		{"efi", efiLayout(512), func(t *testing.T, img string, r Result) {
			root := volumeOf(t, r, "root")
			checkExt(t, img, root.Offset, rootFiles)
			// The ESP's files are on the ESP, not in the root filesystem.
			if out, _ := exec.Command("debugfs", "-R", "ls /boot/efi", fmt.Sprintf("%s?offset=%d", img, root.Offset)).CombinedOutput(); strings.Contains(string(out), "EFI") {
				t.Errorf("root filesystem has /boot/efi content:\n%s", out)
			}
			esp := volumeOf(t, r, "ESP")
			checkVfat(t, img, esp.Offset, esp.Size, espFiles)
			features := sh(t, "dumpe2fs", "-h", fmt.Sprintf("%s?offset=%d", img, root.Offset))
			if !strings.Contains(features, "Filesystem features:      "+Ext4Features+"\n") {
				t.Errorf("ext4 features differ from Ext4Features:\n%s", features)
			}
			if !strings.Contains(features, "Filesystem UUID:          "+uuidN(2)) || !strings.Contains(features, "volume name:   cloudimg-rootfs") {
				t.Errorf("root UUID/label wrong:\n%s", features)
			}
		}},
		{"mbr", mbrRootLayout(256), func(t *testing.T, img string, r Result) {
			all := map[string]string{"/boot/efi/EFI/BOOT/BOOTX64.EFI": espFiles["/EFI/BOOT/BOOTX64.EFI"]}
			for k, v := range rootFiles {
				all[k] = v
			}
			checkExt(t, img, volumeOf(t, r, "root").Offset, all)
		}},
		{"mbr-logical", mbrLogicalLayout(), func(t *testing.T, img string, r Result) {
			checkExt(t, img, volumeOf(t, r, "boot").Offset, map[string]string{"/vmlinuz-0.0.0": "kernel\n"})
			checkExt(t, img, volumeOf(t, r, "root").Offset, rootFiles)
			checkExt(t, img, volumeOf(t, r, "data").Offset, map[string]string{"/lib/dib/data": strings.Repeat("var content\n", 1000)})
			sw := volumeOf(t, r, "swap")
			out := sh(t, "blkid", "-p", "-O", fmt.Sprint(sw.Offset), "-o", "export", img)
			if !strings.Contains(out, "TYPE=swap") || !strings.Contains(out, "LABEL=swap") || !strings.Contains(out, "UUID="+uuidN(3)) {
				t.Errorf("swap signature:\n%s", out)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tree := makeTree(t)
			out := filepath.Join(t.TempDir(), "disk.raw")
			r, err := Assemble(context.Background(), Input{Layout: c.layout, Tree: tree, Output: out, WorkDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			checkTable(t, out, &c.layout.PartitionTables[0])
			c.check(t, out, r)
			noLoopOrMount(t, out, "")
		})
	}
}

func TestAssembleXFSAndLVM(t *testing.T) {
	needHost(t, append(assemblyTools, "mkfs.xfs", "xfs_repair", "pvcreate", "lvs")...)
	l := lvmLayout(800)
	tree := makeTree(t)
	out := filepath.Join(t.TempDir(), "disk.raw")
	r, err := Assemble(context.Background(), Input{Layout: l, Tree: tree, Output: out, WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	checkTable(t, out, &l.PartitionTables[0])
	checkExt(t, out, volumeOf(t, r, "boot").Offset, map[string]string{"/vmlinuz-0.0.0": "kernel\n"})
	checkExt(t, out, volumeOf(t, r, "lv_root").Offset, map[string]string{"/etc/hostname": "dib-test\n"})

	// LVM on a plain host reads the metadata: the VG and both LVs.
	lvm := volumeOf(t, r, "lvm")
	dev := strings.TrimSpace(sh(t, "losetup", "--find", "--show", "--read-only", "-o", fmt.Sprint(lvm.Offset), "--sizelimit", fmt.Sprint(lvm.Size), out))
	conf := "--config=" + lvmConfig([]string{dev})
	lvs := sh(t, "lvs", conf, "--noheadings", "--units", "b", "--nosuffix", "-o", "vg_name,lv_name,lv_size")
	sh(t, "losetup", "-d", dev)
	if !strings.Contains(lvs, "vg lv_root 209715200") || !strings.Contains(lvs, "vg lv_var") {
		t.Errorf("lvs:\n%s", lvs)
	}

	// xfs: repair check and content through a read-only loop mount.
	v := volumeOf(t, r, "lv_var")
	dev = strings.TrimSpace(sh(t, "losetup", "--find", "--show", "--read-only", "-o", fmt.Sprint(v.Offset), "--sizelimit", fmt.Sprint(v.Size), out))
	defer exec.Command("losetup", "-d", dev).Run()
	sh(t, "xfs_repair", "-n", dev)
	mnt := t.TempDir()
	if err := mount.FS("xfs", dev, mnt, "", 1 /* MS_RDONLY */); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(mnt, "lib/dib/data"))
	mount.UnmountAll(mnt)
	if err != nil || !bytes.Equal(got, []byte(strings.Repeat("var content\n", 1000))) {
		t.Errorf("xfs content: %v", err)
	}
}

func TestThinLVRefused(t *testing.T) {
	l := lvmLayout(800)
	l.LVM[0].LVs[1].Type = layout.LVThinPool
	_, err := Assemble(context.Background(), Input{Layout: l, Tree: t.TempDir(), Output: filepath.Join(t.TempDir(), "x.raw")})
	if err == nil || !strings.Contains(err.Error(), "device-mapper") {
		t.Fatalf("want a device-mapper diagnostic, got %v", err)
	}
}

// noLoopOrMount fails if a loop device still maps img or anything is
// mounted under dir.
func noLoopOrMount(t *testing.T, img, dir string) {
	t.Helper()
	out, _ := exec.Command("losetup", "-a").CombinedOutput()
	for _, suffix := range []string{img, img + ".tmp"} {
		if strings.Contains(string(out), "("+suffix+")") {
			t.Errorf("loop device left on %s:\n%s", suffix, out)
		}
	}
	if dir != "" {
		if m, _ := mount.Under(dir); len(m) > 0 {
			t.Errorf("mounts left: %v", m)
		}
	}
}

// TestAssembleFailureAtEveryStep fails the assembly at each of its steps
// in turn: every time, no loop device, no mount, no output and no scratch
// file may remain.
func TestAssembleFailureAtEveryStep(t *testing.T) {
	needHost(t, append(assemblyTools, "mkfs.xfs", "pvcreate")...)
	for _, l := range []*layout.Layout{lvmLayout(800), efiLayout(256), mbrLogicalLayout()} {
		failEveryStep(t, l)
	}
}

func failEveryStep(t *testing.T, l *layout.Layout) {
	tree := makeTree(t)
	for n := 1; ; n++ {
		outDir, work := t.TempDir(), t.TempDir()
		out := filepath.Join(outDir, "disk.raw")
		_, err := Assemble(context.Background(), Input{Layout: l, Tree: tree, Output: out, WorkDir: work, failAt: n})
		noLoopOrMount(t, out, work)
		if err == nil {
			if n < 5 {
				t.Fatalf("only %d steps", n)
			}
			t.Logf("%d steps", n-1)
			return
		}
		if !strings.Contains(err.Error(), errInjected.Error()) {
			t.Fatalf("step %d: unexpected error %v", n, err)
		}
		for _, d := range []string{outDir, work} {
			if e, _ := os.ReadDir(d); len(e) > 0 {
				t.Fatalf("step %d (%v): left in %s: %v", n, err, d, e)
			}
		}
		if n > 200 {
			t.Fatal("no end")
		}
	}
}

// TestMountsInsideTreeNotCopied: a filesystem mounted inside the tree (a
// chroot's /proc left behind) must not end up in the image.
func TestMountsInsideTreeNotCopied(t *testing.T) {
	needHost(t, assemblyTools...)
	tree := makeTree(t)
	proc := filepath.Join(tree, "proc")
	os.Mkdir(proc, 0o555)
	if err := mount.FS("tmpfs", "dib-test", proc, "size=1m", 0); err != nil {
		t.Fatal(err)
	}
	defer mount.UnmountAll(proc)
	os.WriteFile(filepath.Join(proc, "leak"), []byte("x"), 0o644)
	l := mbrRootLayout(256)
	out := filepath.Join(t.TempDir(), "disk.raw")
	r, err := Assemble(context.Background(), Input{Layout: l, Tree: tree, Output: out, WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := exec.Command("debugfs", "-R", "ls /proc", fmt.Sprintf("%s?offset=%d", out, volumeOf(t, r, "root").Offset)).Output()
	if strings.Contains(string(ls), "leak") {
		t.Errorf("a mount inside the tree was copied: %s", ls)
	}
}

func TestCheck(t *testing.T) {
	thin := lvmLayout(800)
	thin.LVM[0].LVs[1].Type = layout.LVThinPool
	btrfs := efiLayout(512)
	btrfs.Filesystems[1].Type = "btrfs"
	two := efiLayout(512)
	two.Images = append(two.Images, layout.Image{Node: "image1", SizeBytes: mib, SectorSize: 512})
	cases := []struct {
		name    string
		l       *layout.Layout
		subject string
		msg     string
	}{
		{"ok", efiLayout(512), "", ""},
		{"thin", thin, "lv_var", "device-mapper"},
		{"btrfs", btrfs, "mkfs_root", `"btrfs"`},
		{"two-images", two, "image1", "one disk image"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ds := Check(c.l)
			if c.subject == "" {
				if len(ds) != 0 {
					t.Fatalf("unexpected: %v", ds)
				}
				return
			}
			if len(ds) != 1 || ds[0].Subject != c.subject || !strings.Contains(ds[0].Message, c.msg) {
				t.Fatalf("got %v, want %s: %s", ds, c.subject, c.msg)
			}
		})
	}
}
