package boot

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/internal/fixture"
	"github.com/dibuild/dib/internal/guestlock"
	"github.com/dibuild/dib/runtime/bootloader"
	"github.com/dibuild/dib/runtime/disk"
	"github.com/dibuild/dib/runtime/qcow2"
)

// The end-to-end boot test builds a real Debian bookworm tree once with
// mmdebstrap (kernel, systemd, GRUB modules; root password "dib"), cached
// as a tarball, assembles a GPT disk with ESP + BIOS boot partition + root
// from it, installs GRUB for BIOS and UEFI and boots it both ways.
//
// The guests run under TCG unless DIB_BOOT_TEST_KVM=1: on nested-KVM
// machines like the CI's, /dev/kvm opens but a guest kernel hangs right
// after GRUB, while TCG boots to the login prompt in under a minute.
//
// It runs under DIB_REQUIRE_INTEGRATION=1 or DIB_BOOT_TEST=1 (building the
// tree takes minutes the first time); the cache is $DIB_TEST_CACHE
// (default /var/cache/dib-test).

// debianPackages are installed on top of minbase: a kernel and initramfs,
// systemd, and lvm2 + xfsprogs so the initramfs can boot DIB's efi-lvm
// layout (root on an xfs logical volume). GRUB comes from the host.
const debianPackages = "linux-image-amd64,systemd-sysv,udev,lvm2,xfsprogs"

func debianTree(t *testing.T) string {
	t.Helper()
	want := os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" || os.Getenv("DIB_BOOT_TEST") == "1"
	if !want {
		t.Skip("boot test of a Debian image: set DIB_BOOT_TEST=1 (or DIB_REQUIRE_INTEGRATION=1)")
	}
	var missing []string
	for _, tool := range []string{"mmdebstrap", "qemu-system-x86_64", "grub-mkimage", "mkfs.vfat", "mcopy", "mke2fs", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	if len(missing) > 0 {
		t.Fatalf("boot test needs %s (Debian: mmdebstrap qemu-system-x86 ovmf grub-common grub-pc-bin grub-efi-amd64-bin dosfstools mtools e2fsprogs)", strings.Join(missing, ", "))
	}
	cache := os.Getenv("DIB_TEST_CACHE")
	if cache == "" {
		cache = "/var/cache/dib-test"
	}
	// The tarball's name carries its package list: a changed list builds
	// a new one instead of reusing a stale tree.
	tarball := filepath.Join(cache, "bookworm-"+strings.ReplaceAll(debianPackages, ",", "_")+".tar")
	if fi, err := os.Stat(tarball); err != nil || fi.Size() == 0 {
		debs := filepath.Join(cache, "apt")
		if err := os.MkdirAll(debs, 0o755); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		cmd := exec.Command("mmdebstrap", "--variant=minbase", "--format=tar",
			"--include="+debianPackages,
			"--skip=cleanup/apt/cache",
			`--setup-hook=mkdir -p "$1"/var/cache/apt/archives`,
			"--setup-hook=sync-in "+debs+" /var/cache/apt/archives",
			"--customize-hook=sync-out /var/cache/apt/archives "+debs,
			`--customize-hook=chroot "$1" sh -c "echo root:dib | chpasswd"`,
			`--customize-hook=rm -f "$1"/var/cache/apt/archives/*.deb`,
			"bookworm", tarball+".tmp", "http://deb.debian.org/debian")
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tarball + ".tmp")
			t.Fatalf("mmdebstrap: %v\n%s", err, out)
		}
		if err := os.Rename(tarball+".tmp", tarball); err != nil {
			t.Fatal(err)
		}
		t.Logf("mmdebstrap: %s", time.Since(start).Round(time.Second))
	}
	tree := filepath.Join(t.TempDir(), "tree")
	os.Mkdir(tree, 0o755)
	if out, err := exec.Command("tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", tarball, "-C", tree).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	files := map[string]string{
		"etc/hostname": "dib-boot-test\n",
	}
	for p, c := range files {
		if err := os.WriteFile(filepath.Join(tree, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return tree
}

// efiLayout is DIB's block-device-efi shape on a 2 GiB disk.
func efiLayout() *layout.Layout {
	const mib = 1 << 20
	size := int64(2048 * mib)
	sectors := size / 512
	part := func(n int, node, typ string, start, count int64) layout.Partition {
		return layout.Partition{Node: node, Number: n, Kind: layout.KindPrimary, Start: start, Size: count,
			StartBytes: start * 512, SizeBytes: count * 512, GPTType: typ, GPTName: node,
			GPTGUID: fmt.Sprintf("AAAAAAAA-BBBB-4CCC-8DDD-%012d", n), DeviceNode: fmt.Sprintf("image0%d", n)}
	}
	last := (sectors - 34) / 2048 * 2048
	return &layout.Layout{
		Images: []layout.Image{{Node: "image0", SizeBytes: size, SectorSize: 512}},
		PartitionTables: []layout.PartitionTable{{Name: "p", Base: "image0", Label: layout.LabelGPT, SectorSize: 512,
			DiskSizeBytes: size, DiskSectors: sectors, FirstUsableLBA: 34, LastUsableLBA: sectors - 34,
			DiskGUID: "11111111-2222-4333-8444-555555555555",
			Partitions: []layout.Partition{
				part(1, "ESP", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", 2048, 64*2048),
				part(2, "BSP", "21686148-6449-6E6F-744E-656564454649", 66*2048, 8*2048),
				part(3, "root", "0FC63DAF-8483-4772-8E79-3D69D8477DE4", 74*2048, last-74*2048),
			}}},
		Filesystems: []layout.Filesystem{
			{Node: "mkfs_ESP", Base: "ESP", Type: "vfat", Label: "ESP", UUID: "00000000-0000-4000-8000-000000000001", VolumeID: "00000001", MountPoint: "/boot/efi"},
			{Node: "mkfs_root", Base: "root", Type: "ext4", Label: "cloudimg-rootfs", UUID: "00000000-0000-4000-8000-000000000002", Root: true, MountPoint: "/",
				Opts: []string{"-i", "4096", "-J", "size=64"}},
		},
		Mounts: []layout.Mount{{Node: "mount_mkfs_root", MountPoint: "/", Filesystem: "mkfs_root"},
			{Node: "mount_mkfs_ESP", MountPoint: "/boot/efi", Filesystem: "mkfs_ESP", Order: 1}},
		Fstab: []layout.FstabEntry{{Line: "LABEL=cloudimg-rootfs / ext4 defaults 0 1"}, {Line: "LABEL=ESP /boot/efi vfat defaults 0 2"}},
	}
}

// mbrLayout is DIB's block-device-mbr shape: one bootable primary root
// partition on a 2 GiB disk, core.img in the gap after the MBR.
func mbrLayout() *layout.Layout {
	const size = int64(2048 << 20)
	sectors := size / 512
	chs := [3]uint8{0xfe, 0xff, 0xff}
	return &layout.Layout{
		Images: []layout.Image{{Node: "image0", SizeBytes: size, SectorSize: 512}},
		PartitionTables: []layout.PartitionTable{{Name: "p", Base: "image0", Label: layout.LabelMBR, SectorSize: 512,
			DiskSizeBytes: size, DiskSectors: sectors, MBRDiskID: 0x0d1b0d1b, MBRSignatures: []int64{0},
			Partitions: []layout.Partition{{Node: "root", Number: 1, Kind: layout.KindPrimary, Start: 2048, Size: sectors - 2048,
				StartBytes: 2048 * 512, SizeBytes: (sectors - 2048) * 512, Boot: true, MBRType: 0x83, DeviceNode: "image01"}},
			MBRRecords: []layout.MBRRecord{{Slot: 0, Boot: true, Type: 0x83, CHSStart: chs, CHSEnd: chs, LBAStart: 2048, LBASize: uint32(sectors - 2048)}},
		}},
		Filesystems: []layout.Filesystem{{Node: "mkfs_root", Base: "root", Type: "ext4", Label: "cloudimg-rootfs",
			UUID: "00000000-0000-4000-8000-000000000001", Root: true, MountPoint: "/", Opts: []string{"-i", "4096", "-J", "size=64"}}},
		Mounts: []layout.Mount{{Node: "mount_mkfs_root", MountPoint: "/", Filesystem: "mkfs_root"}},
		Fstab:  []layout.FstabEntry{{Line: "LABEL=cloudimg-rootfs / ext4 defaults 0 1"}},
	}
}

// buildImage assembles l from tree, installs GRUB and returns the raw image.
func buildImage(t *testing.T, l *layout.Layout, tree, dir, name string) string {
	t.Helper()
	ctx := context.Background()
	img := filepath.Join(dir, name+".raw")
	start := time.Now()
	r, err := disk.Assemble(ctx, disk.Input{Layout: l, Tree: tree, Output: img, WorkDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	assembled := time.Since(start)
	mnt := filepath.Join(dir, "mnt-"+name)
	os.Mkdir(mnt, 0o755)
	m, err := disk.Mount(ctx, disk.MountInput{Layout: l, Image: img, Volumes: r.Volumes, Dir: mnt})
	if err != nil {
		t.Fatal(err)
	}
	// finalise.d's place: the mounted final filesystem.
	if err := disk.WriteFstab(mnt, l); err != nil {
		m.Unmount(ctx)
		t.Fatal(err)
	}
	res, err := bootloader.Install(ctx, bootloader.Input{Layout: l, Image: img, Volumes: r.Volumes, Root: mnt,
		SerialConsole: "ttyS0,115200", Timeout: 1, WorkDir: dir})
	if uerr := m.Unmount(ctx); uerr != nil {
		t.Fatal(uerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	// diskexec's last pass before the outputs.
	if _, err := disk.Finish(ctx, nil, img, l, r.Volumes, 0); err != nil {
		t.Fatal(err)
	}
	if len(res.Kernels) == 0 {
		t.Fatalf("bootloader: %+v", res)
	}
	t.Logf("%s: assembly %s, +bootloader %s (%+v)", name, assembled.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), res)
	return img
}

func TestBootDebianBIOSAndUEFI(t *testing.T) {
	tree := debianTree(t)
	ctx := context.Background()
	dir := t.TempDir()
	if keep := os.Getenv("DIB_BOOT_TEST_KEEP"); keep != "" {
		dir = keep // keep the images for `dib boot` by hand
	}
	gpt := buildImage(t, efiLayout(), tree, dir, "gpt")
	// Reproducible outputs: the same layout assembled from another
	// unpacking of the same tree (other change and access times, as a
	// build-cache restore has) gives the same raw and qcow2 bytes.
	gpt2 := buildImage(t, efiLayout(), debianTree(t), dir, "gpt-again")
	mbr := buildImage(t, mbrLayout(), tree, dir, "mbr")
	// DIB's block-device-efi-lvm as the compiler lays it out (64 GiB,
	// sparse): root, /var and /home are xfs logical volumes.
	var lvm layout.Layout
	b, err := os.ReadFile("../disk/testdata/layout-efi-lvm.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &lvm); err != nil {
		t.Fatal(err)
	}
	lvmImg := buildImage(t, &lvm, tree, dir, "efi-lvm")
	start := time.Now()
	qc := filepath.Join(dir, "gpt.qcow2")
	if _, err := qcow2.Convert(ctx, gpt, qc, qcow2.Options{}); err != nil {
		t.Fatal(err)
	}
	qz := filepath.Join(dir, "mbr.qcow2")
	if _, err := qcow2.Convert(ctx, mbr, qz, qcow2.Options{Compress: true}); err != nil {
		t.Fatal(err)
	}
	t.Logf("qcow2 (plain + compressed) %s", time.Since(start).Round(time.Millisecond))
	qc2 := filepath.Join(dir, "gpt-again.qcow2")
	if _, err := qcow2.Convert(ctx, gpt2, qc2, qcow2.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2]string{{gpt, gpt2}, {qc, qc2}} {
		a, b := fixture.SHA256File(t, pair[0]), fixture.SHA256File(t, pair[1])
		if a != b {
			t.Errorf("not reproducible: %s %s, %s %s", filepath.Base(pair[0]), a, filepath.Base(pair[1]), b)
		} else {
			t.Logf("reproducible: %s and %s sha256 %s", filepath.Base(pair[0]), filepath.Base(pair[1]), a)
		}
	}
	os.Remove(gpt2)
	os.Remove(qc2)

	for _, c := range []struct {
		name  string
		image string
		uefi  bool
	}{{"gpt-bios-raw", gpt, false}, {"gpt-uefi-qcow2", qc, true}, {"mbr-bios-compressed-qcow2", qz, false}, {"efi-lvm-uefi-raw", lvmImg, true}} {
		t.Run(c.name, func(t *testing.T) {
			// Two guests at a time (go test's -parallel defaults to
			// GOMAXPROCS): the boots dominate this test's time.
			t.Parallel()
			var console strings.Builder
			release, err := guestlock.Acquire(30 * time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			br, err := Boot(ctx, Options{Image: c.image, UEFI: c.uefi, Timeout: 240 * time.Second, Login: "root:dib",
				Command: "findmnt -n -o SOURCE,FSTYPE /; cat /etc/hostname; test -d /sys/firmware/efi && echo efi || echo bios",
				WorkDir: dir, Console: &console, NoKVM: os.Getenv("DIB_BOOT_TEST_KVM") != "1"})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: login prompt after %s (%s)", c.name, br.LoginPrompt.Round(100*time.Millisecond), br.Accel)
			want := "bios"
			if c.uefi {
				want = "efi"
			}
			root := "/dev/vda3 ext4"
			switch {
			case strings.HasPrefix(c.name, "mbr"):
				root = "/dev/vda1 ext4"
			case strings.HasPrefix(c.name, "efi-lvm"):
				root = "/dev/mapper/vg-lv_root xfs"
			}
			if !strings.Contains(br.CommandOutput, root) || !strings.Contains(br.CommandOutput, "dib-boot-test") ||
				!strings.Contains(br.CommandOutput, "\n"+want+"\n") {
				t.Errorf("command output:\n%s", br.CommandOutput)
			}
		})
	}
}
