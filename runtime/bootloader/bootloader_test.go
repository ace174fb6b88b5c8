package bootloader

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/internal/golden"
	"github.com/dibuild/dib/runtime/disk"
)

func TestConfigGolden(t *testing.T) {
	cases := []struct {
		name string
		in   ConfigInput
	}{
		{"serial-label.cfg", ConfigInput{BootUUID: "00000000-0000-4000-8000-000000000002", Root: "LABEL=cloudimg-rootfs",
			Kernels: []string{"6.1.0-28-amd64", "6.1.0-9-amd64"}, Initrd: map[string]bool{"6.1.0-28-amd64": true},
			Cmdline: DefaultCmdline, Serial: "ttyS0,115200", Timeout: 5}},
		{"separate-boot-uuid.cfg", ConfigInput{BootUUID: "b00710ad-0000-4000-8000-000000000001", BootSeparate: true,
			Root: "UUID=00000000-0000-4000-8000-000000000003", Kernels: []string{"6.1.0-28-amd64"},
			Initrd: map[string]bool{"6.1.0-28-amd64": true}, Cmdline: "quiet", Timeout: 0}},
		{"hvc-no-vt-hidden.cfg", ConfigInput{BootUUID: "00000000-0000-4000-8000-000000000002", Root: "LABEL=img-rootfs",
			Kernels: []string{"6.1.0-28-amd64"}, Serial: "ttyS1,9600", VirtualTerminal: "none", Timeout: 0, TimeoutStyle: "hidden"}},
		{"timer-check-no-consoles.cfg", ConfigInput{BootUUID: "00000000-0000-4000-8000-000000000002", Root: "LABEL=img-rootfs",
			Kernels: []string{"6.1.0-28-amd64"}, Cmdline: "quiet boot=LABEL=bootfs", VirtualTerminal: "none", TimerCheck: true, Timeout: 5}},
		{"redhat-initramfs-bls.cfg", ConfigInput{BootUUID: "00000000-0000-4000-8000-000000000002", Root: "LABEL=img-rootfs",
			Kernels:     []string{"5.14.0-570.el9.x86_64", "5.14.0-500.el9.x86_64"},
			InitrdFiles: map[string]string{"5.14.0-570.el9.x86_64": "initramfs-5.14.0-570.el9.x86_64.img"},
			Titles:      map[string]string{"5.14.0-570.el9.x86_64": "CentOS Stream (5.14.0-570.el9.x86_64) 9"},
			Cmdline:     DefaultCmdline, Serial: "ttyS0,115200", Timeout: 5}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { golden.Compare(t, filepath.Join("testdata", c.name), []byte(Config(c.in))) })
	}
}

func TestBLSTitles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "0123-5.14.0-570.el9.x86_64.conf"), []byte("title CentOS Stream (5.14.0-570.el9.x86_64) 9\nversion 5.14.0-570.el9.x86_64\nlinux /vmlinuz-5.14.0-570.el9.x86_64\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "0123-rescue.conf"), []byte("title Rescue\nlinux /vmlinuz-0-rescue\n"), 0o644)
	got := blsTitles(dir)
	if len(got) != 1 || got["5.14.0-570.el9.x86_64"] != "CentOS Stream (5.14.0-570.el9.x86_64) 9" {
		t.Errorf("titles %q", got)
	}
}

func TestDefaultGrubArgs(t *testing.T) {
	defaults := "GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX=\"${GRUB_CMDLINE_LINUX:-} root=LABEL=img-rootfs\"\n" +
		"GRUB_CMDLINE_LINUX_DEFAULT=\"console=tty0 console=ttyS0,115200 no_timer_check nofb nomodeset gfxpayload=text rd.iscsi.firmware=1\"\n"
	got := defaultGrubArgs(defaults, "nofb nomodeset gfxpayload=text ro no_timer_check console=ttyS0,115200 console=tty0")
	if strings.Join(got, " ") != "rd.iscsi.firmware=1" {
		t.Errorf("extra arguments %q", got)
	}
}

func TestKernelOrder(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"6.1.0-9-amd64", "6.1.0-28-amd64", "5.10.0-30-amd64", "6.10.1-1-amd64"} {
		os.WriteFile(filepath.Join(dir, "vmlinuz-"+v), nil, 0o644)
	}
	got := strings.Join(kernels(dir), " ")
	if want := "6.10.1-1-amd64 6.1.0-28-amd64 6.1.0-9-amd64 5.10.0-30-amd64"; got != want {
		t.Errorf("kernels %q, want %q", got, want)
	}
}

func TestPatches(t *testing.T) {
	boot := make([]byte, 512)
	boot[0x66], boot[0x67] = 0xeb, 0x05
	patchBoot(boot, 2048)
	if binary.LittleEndian.Uint64(boot[0x5c:]) != 2048 || boot[0x64] != 0xff || boot[0x66] != 0x90 || boot[0x67] != 0x90 {
		t.Errorf("boot.img patch: % x", boot[0x5c:0x68])
	}
	core := bytes.Repeat([]byte{0xaa}, 512*10)
	patchCore(core, 2048)
	if binary.LittleEndian.Uint64(core[0x1f4:]) != 2049 || binary.LittleEndian.Uint16(core[0x1fc:]) != 9 ||
		binary.LittleEndian.Uint16(core[0x1fe:]) != 0x820 || !bytes.Equal(core[0x1e8:0x1f4], make([]byte, 12)) {
		t.Errorf("core.img blocklist: % x", core[0x1e8:0x200])
	}
}

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
	for _, d := range []string{"/usr/lib/grub/i386-pc", "/usr/lib/grub/x86_64-efi"} {
		if _, err := os.Stat(d); err != nil {
			missing = append(missing, d+" (grub-pc-bin, grub-efi-amd64-bin)")
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "needs " + strings.Join(missing, ", ")
	if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
}

// testLayout is DIB's block-device-efi shape (ESP, BIOS boot, root) or the
// mbr one (one bootable root).
func testLayout(mbr bool) *layout.Layout {
	const mib = 1 << 20
	l := &layout.Layout{Images: []layout.Image{{Node: "image0", SizeBytes: 256 * mib, SectorSize: 512}}}
	t := layout.PartitionTable{Name: "p", Base: "image0", SectorSize: 512, DiskSizeBytes: 256 * mib, DiskSectors: 256 * mib / 512}
	part := func(n int, node string, start, size int64) layout.Partition {
		return layout.Partition{Node: node, Number: n, Kind: layout.KindPrimary, Start: start, Size: size,
			StartBytes: start * 512, SizeBytes: size * 512, DeviceNode: fmt.Sprintf("image0%d", n)}
	}
	if mbr {
		t.Label, t.MBRDiskID, t.MBRSignatures = layout.LabelMBR, 0x12345678, []int64{0}
		p := part(1, "root", 2048, t.DiskSectors-2048)
		p.Boot, p.MBRType = true, 0x83
		t.Partitions = []layout.Partition{p}
		t.MBRRecords = []layout.MBRRecord{{Slot: 0, Boot: true, Type: 0x83, CHSStart: [3]uint8{0xfe, 0xff, 0xff}, CHSEnd: [3]uint8{0xfe, 0xff, 0xff}, LBAStart: 2048, LBASize: uint32(p.Size)}}
		l.Filesystems = []layout.Filesystem{{Node: "mkfs_root", Base: "root", Type: "ext4", Label: "cloudimg-rootfs", UUID: "00000000-0000-4000-8000-000000000001", Root: true, MountPoint: "/"}}
	} else {
		t.Label, t.DiskGUID, t.FirstUsableLBA, t.LastUsableLBA = layout.LabelGPT, "11111111-2222-4333-8444-555555555555", 34, t.DiskSectors-34
		esp, bsp, root := part(1, "ESP", 2048, 64*2048), part(2, "BSP", 66*2048, 8*2048), part(3, "root", 74*2048, (t.DiskSectors-34)/2048*2048-74*2048)
		esp.GPTType, bsp.GPTType, root.GPTType = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "21686148-6449-6E6F-744E-656564454649", "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
		esp.GPTName, bsp.GPTName, root.GPTName = "ESP", "BSP", "root"
		esp.GPTGUID, bsp.GPTGUID, root.GPTGUID = "AAAAAAAA-BBBB-4CCC-8DDD-000000000001", "AAAAAAAA-BBBB-4CCC-8DDD-000000000002", "AAAAAAAA-BBBB-4CCC-8DDD-000000000003"
		t.Partitions = []layout.Partition{esp, bsp, root}
		l.Filesystems = []layout.Filesystem{
			{Node: "mkfs_ESP", Base: "ESP", Type: "vfat", Label: "ESP", UUID: "00000000-0000-4000-8000-000000000001", VolumeID: "00000001", MountPoint: "/boot/efi"},
			{Node: "mkfs_root", Base: "root", Type: "ext4", Label: "cloudimg-rootfs", UUID: "00000000-0000-4000-8000-000000000002", Root: true, MountPoint: "/"},
		}
		l.Mounts = []layout.Mount{{Node: "mount_mkfs_root", MountPoint: "/", Filesystem: "mkfs_root"}, {Node: "mount_mkfs_ESP", MountPoint: "/boot/efi", Filesystem: "mkfs_ESP", Order: 1}}
	}
	if mbr {
		l.Mounts = []layout.Mount{{Node: "mount_mkfs_root", MountPoint: "/", Filesystem: "mkfs_root"}}
	}
	l.PartitionTables = []layout.PartitionTable{t}
	return l
}

func fakeTree(t *testing.T) string {
	tree := filepath.Join(t.TempDir(), "tree")
	for _, p := range []string{"boot/vmlinuz-6.1.0-28-amd64", "boot/initrd.img-6.1.0-28-amd64", "etc/hostname"} {
		os.MkdirAll(filepath.Dir(filepath.Join(tree, p)), 0o755)
		os.WriteFile(filepath.Join(tree, p), []byte(p), 0o644)
	}
	return tree
}

// Build assembles l from tree, mounts it and installs GRUB: the sequence
// dib apply runs (exported to the boot test through this test helper).
func build(t *testing.T, l *layout.Layout, tree string, in Input) (string, Result) {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.raw")
	r, err := disk.Assemble(context.Background(), disk.Input{Layout: l, Tree: tree, Output: img, WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	m, err := disk.Mount(context.Background(), disk.MountInput{Layout: l, Image: img, Volumes: r.Volumes, Dir: mnt})
	if err != nil {
		t.Fatal(err)
	}
	in.Layout, in.Image, in.Volumes, in.Root, in.WorkDir = l, img, r.Volumes, mnt, t.TempDir()
	res, err := Install(context.Background(), in)
	if uerr := m.Unmount(context.Background()); uerr != nil {
		t.Fatal(uerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	return img, res
}

func TestInstall(t *testing.T) {
	needHost(t, "grub-mkimage", "mkfs.vfat", "mcopy", "mtype", "debugfs", "mke2fs", "sgdisk")
	for _, mbr := range []bool{false, true} {
		name := map[bool]string{false: "gpt-bios-uefi", true: "mbr-bios"}[mbr]
		t.Run(name, func(t *testing.T) {
			l := testLayout(mbr)
			img, res := build(t, l, fakeTree(t), Input{SerialConsole: "ttyS0,115200", Timeout: -1})
			raw, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			boot, _ := os.ReadFile("/usr/lib/grub/i386-pc/boot.img")
			want := int64(1)
			if !mbr {
				want = l.PartitionTables[0].Partitions[1].Start
			}
			if !res.BIOS || res.CoreSector != want {
				t.Fatalf("BIOS %v core at %d, want %d", res.BIOS, res.CoreSector, want)
			}
			if got := binary.LittleEndian.Uint64(raw[0x5c:]); int64(got) != want {
				t.Errorf("boot.img points at %d, want %d", got, want)
			}
			if !bytes.Equal(raw[0x68:440], boot[0x68:440]) || !bytes.Equal(raw[:0x5c], boot[:0x5c]) {
				t.Errorf("MBR boot code is not boot.img")
			}
			if raw[510] != 0x55 || raw[511] != 0xaa {
				t.Errorf("MBR signature lost")
			}
			if mbr {
				if binary.LittleEndian.Uint32(raw[440:]) != 0x12345678 || raw[446] != 0x80 {
					t.Errorf("disk signature or partition table overwritten")
				}
			} else if out, err := exec.Command("sgdisk", "-v", img).CombinedOutput(); err != nil || !strings.Contains(string(out), "No problems found") {
				t.Errorf("sgdisk -v: %v\n%s", err, out)
			}
			core := raw[want*512:]
			if binary.LittleEndian.Uint64(core[0x1f4:]) != uint64(want+1) || int64(binary.LittleEndian.Uint16(core[0x1fc:])) != res.CoreSectors-1 {
				t.Errorf("core.img blocklist % x", core[0x1e8:0x200])
			}
			rootOff := l.PartitionTables[0].Partitions[len(l.PartitionTables[0].Partitions)-1].StartBytes
			cfg, err := exec.Command("debugfs", "-R", "cat /boot/grub/grub.cfg", fmt.Sprintf("%s?offset=%d", img, rootOff)).Output()
			if err != nil || !strings.Contains(string(cfg), "linux /boot/vmlinuz-6.1.0-28-amd64 root=LABEL=cloudimg-rootfs ro console=tty0 console=ttyS0,115200 no_timer_check nofb nomodeset gfxpayload=text") ||
				!strings.Contains(string(cfg), "set timeout=5") {
				t.Errorf("grub.cfg (%v):\n%s", err, cfg)
			}
			if mods, err := exec.Command("debugfs", "-R", "ls /boot/grub/i386-pc", fmt.Sprintf("%s?offset=%d", img, rootOff)).Output(); err != nil || !strings.Contains(string(mods), "normal.mod") {
				t.Errorf("modules not copied: %v", err)
			}
			if mbr {
				if res.UEFI {
					t.Errorf("UEFI installed on an MBR disk without ESP")
				}
				return
			}
			if !res.UEFI {
				t.Fatal("no UEFI")
			}
			esp := fmt.Sprintf("%s@@%d", img, l.PartitionTables[0].Partitions[0].StartBytes)
			for _, f := range []string{"::/EFI/BOOT/BOOTX64.EFI", "::/EFI/debian/grubx64.efi"} {
				cmd := exec.Command("mtype", "-i", esp, f)
				cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
				out, err := cmd.Output()
				if err != nil || !bytes.HasPrefix(out, []byte("MZ")) {
					t.Errorf("%s: not a PE image (%v)", f, err)
				}
			}
		})
	}
}
