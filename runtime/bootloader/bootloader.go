// Package bootloader installs GRUB 2 on an assembled disk image without
// loop devices of the whole disk and without grub-install: the job of DIB's
// `bootloader` element, done from the host.
//
//   - BIOS: `grub-mkimage -O i386-pc` builds core.img with the partition,
//     filesystem and LVM modules and an embedded config that finds /boot by
//     filesystem UUID. core.img goes into the BIOS boot partition (GPT,
//     type EF02) or the gap after the MBR (sectors 1… before the first
//     partition); boot.img goes into MBR bytes 0–439, leaving the disk
//     signature and the partition table alone. The patches are those
//     grub-bios-setup makes (offsets from GRUB's i386/pc/boot.h):
//
//     boot.img 0x5c  8 bytes  LBA of core.img's first sector (LE)
//     boot.img 0x64  1 byte   boot drive: 0xff, use the BIOS's
//     boot.img 0x66  2 bytes  drive-check jump → 0x90 0x90 (hard disk)
//     core.img 0x1f4 8 bytes  blocklist: LBA of core.img's second sector
//     core.img 0x1fc 2 bytes  blocklist: sectors that follow
//     core.img 0x1fe 2 bytes  blocklist: load segment 0x820
//     core.img 0x1e8 12 bytes next blocklist entry: zero (terminator)
//
//     core.img is written contiguously, so one blocklist entry covers it;
//     it carries no Reed-Solomon redundancy (the field grub-mkimage
//     leaves at 0 tells the loader so).
//
//   - UEFI: `grub-mkimage -O x86_64-efi` gives EFI/BOOT/BOOTX64.EFI and
//     EFI/debian/grubx64.efi on the ESP, written with mtools (the kernel
//     here has no vfat). When the image has Debian's signed shim and GRUB,
//     BOOTX64.EFI is shim and grubx64.efi the signed GRUB, which reads
//     EFI/debian/grub.cfg: a stub that finds /boot and loads its grub.cfg.
//
//   - grub.cfg goes into /boot/grub of the mounted root with the GRUB
//     modules of each platform (as grub-install copies them): the caller's
//     (e.g. from the image's grub-mkconfig) or one generated from the
//     kernels in /boot, root by label (as DIB's bootloader element rewrites
//     it) or UUID, the serial console and DIB_BOOTLOADER_DEFAULT_CMDLINE.
//
// Why not grub-install on a loop device: it must probe the device holding
// /boot/grub, which is a loop device over one partition here (no partition
// nodes without udev), and map it to the whole-disk device; it also reads
// the host's or chroot's state. grub-mkimage needs neither root nor
// devices, and the result is the same on every host.
package bootloader

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/runtime/disk"
	"github.com/dibuild/dib/runtime/safepath"
	"github.com/dibuild/dib/runtime/shell"
)

// Input describes where to install GRUB.
type Input struct {
	Layout *layout.Layout
	// Image is the raw disk image; Volumes are from disk.Assemble.
	Image   string
	Volumes []disk.Volume
	// Root is the mounted root filesystem of the image (disk.Mount), with
	// /boot mounted if it is separate. grub.cfg and the modules go to
	// Root/boot/grub; kernels are found in Root/boot.
	Root string
	// BIOS and UEFI select the targets; both false means every target the
	// layout allows (BIOS with an MBR or a BIOS boot partition, UEFI with
	// an ESP).
	BIOS, UEFI bool
	// Cmdline is DIB_BOOTLOADER_DEFAULT_CMDLINE; "" means DIB's default
	// "nofb nomodeset gfxpayload=text".
	Cmdline string
	// SerialConsole is the serial console (DIB_BOOTLOADER_SERIAL_CONSOLE;
	// DIB's bootloader element uses "ttyS0,115200" on x86); "" for none.
	SerialConsole string
	// TimerCheck leaves no_timer_check off the command line
	// (DIB_NO_TIMER_CHECK=False).
	TimerCheck bool
	// VirtualTerminal is DIB_BOOTLOADER_VIRTUAL_TERMINAL ("" = tty0).
	VirtualTerminal string
	// Timeout is DIB_GRUB_TIMEOUT in seconds; negative means DIB's 5.
	Timeout int
	// TimeoutStyle is DIB_GRUB_TIMEOUT_STYLE; "" leaves GRUB's default.
	TimeoutStyle string
	// RootByUUID puts root=UUID= on the command line instead of DIB's
	// root=LABEL=.
	RootByUUID bool
	// GrubCfg, when set, is written as grub.cfg instead of a generated one.
	GrubCfg []byte
	// ModulesDir holds the GRUB platform directories (i386-pc,
	// x86_64-efi); "" means Root/usr/lib/grub when it has them, else the
	// host's /usr/lib/grub.
	ModulesDir string
	// WorkDir holds scratch files; "" means os.TempDir().
	WorkDir string
	// SourceDateEpoch is the time of what is written on the ESP (mtools'
	// clock, see disk.FATEnv).
	SourceDateEpoch int64
	Runner          *shell.Runner
}

// Result says what was installed.
type Result struct {
	BIOS bool `json:"bios"`
	UEFI bool `json:"uefi"`
	// CoreSector and CoreSectors locate core.img (BIOS).
	CoreSector  int64 `json:"core_sector,omitempty"`
	CoreSectors int64 `json:"core_sectors,omitempty"`
	// Shim is true when BOOTX64.EFI is the image's shim.
	Shim bool `json:"shim,omitempty"`
	// Kernels are the kernel versions in the menu, default first.
	Kernels []string `json:"kernels"`
}

// BIOS core.img modules: disk access, partition maps, filesystems, LVM,
// the search used by the embedded config, and what a grub.cfg needs, so a
// missing module directory does not stop the boot.
var biosModules = []string{"biosdisk", "part_msdos", "part_gpt", "ext2", "xfs", "fat", "lvm", "search", "search_fs_uuid",
	"search_label", "normal", "linux", "configfile", "echo", "test", "serial", "terminal", "gzio", "minicmd"}

var efiModules = []string{"part_msdos", "part_gpt", "ext2", "xfs", "fat", "lvm", "search", "search_fs_uuid", "search_label",
	"normal", "linux", "configfile", "echo", "test", "serial", "terminal", "gzio", "minicmd", "efi_gop", "efi_uga",
	"all_video", "chain", "reboot", "halt"}

type install struct {
	ctx    context.Context
	in     Input
	runner *shell.Runner
	work   string
	boot   *layout.Filesystem // the filesystem holding /boot
	esp    *disk.Volume
	res    Result
}

// Install installs GRUB for the selected targets. It writes only into the
// image file and below Root; on error the image should be discarded.
func Install(ctx context.Context, in Input) (Result, error) {
	if in.Layout == nil || in.Image == "" || in.Root == "" {
		return Result{}, errors.New("bootloader: layout, image and mounted root are required")
	}
	r := in.Runner
	if r == nil {
		r = &shell.Runner{}
	}
	i := &install{ctx: ctx, in: in, runner: r}
	work := in.WorkDir
	if work == "" {
		work = os.TempDir()
	}
	dir, err := os.MkdirTemp(work, "dib-grub-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	i.work = dir
	if err := i.run(); err != nil {
		return Result{}, fmt.Errorf("bootloader: %w", err)
	}
	return i.res, nil
}

func (i *install) run() error {
	l := i.in.Layout
	i.boot = l.RootFilesystem()
	for k := range l.Filesystems {
		if l.Filesystems[k].MountPoint == "/boot" {
			i.boot = &l.Filesystems[k]
		}
	}
	if i.boot == nil {
		return errors.New("the layout has no root filesystem")
	}
	bios, biosWhy := i.biosTarget()
	uefi := i.findESP()
	wantBIOS, wantUEFI := i.in.BIOS, i.in.UEFI
	if !wantBIOS && !wantUEFI {
		wantBIOS, wantUEFI = bios != nil, uefi
	}
	if wantBIOS && bios == nil {
		return errors.New(biosWhy)
	}
	if wantUEFI && !uefi {
		return errors.New("UEFI boot needs an EFI system partition (GPT type EF00) with a FAT filesystem")
	}
	if !wantBIOS && !wantUEFI {
		return errors.New("the layout allows neither BIOS (MBR or BIOS boot partition) nor UEFI (ESP) boot")
	}
	if err := i.writeConfig(); err != nil {
		return err
	}
	if wantBIOS {
		if err := i.installBIOS(bios); err != nil {
			return err
		}
	}
	if wantUEFI {
		if err := i.installUEFI(); err != nil {
			return err
		}
	}
	return nil
}

// gap is where core.img may go: first sector and number of sectors.
type gap struct{ start, sectors int64 }

func (i *install) biosTarget() (*gap, string) {
	for _, t := range i.in.Layout.PartitionTables {
		if t.SectorSize != 0 && t.SectorSize != 512 {
			return nil, fmt.Sprintf("BIOS boot needs 512-byte sectors; this disk has %d-byte sectors (UEFI only)", t.SectorSize)
		}
		switch t.Label {
		case layout.LabelGPT:
			for _, p := range t.Partitions {
				if strings.EqualFold(p.GPTType, "21686148-6449-6E6F-744E-656564454649") {
					return &gap{p.StartBytes / 512, p.SizeBytes / 512}, ""
				}
			}
			return nil, "BIOS boot on GPT needs a BIOS boot partition (type EF02)"
		case layout.LabelMBR:
			first := t.DiskSectors
			for _, p := range t.Partitions {
				first = min(first, p.StartBytes/512)
			}
			if t.Extended != nil {
				first = min(first, t.Extended.StartBytes/512)
			}
			return &gap{1, first - 1}, ""
		}
	}
	return nil, "BIOS boot needs a partition table"
}

func (i *install) findESP() bool {
	for _, fs := range i.in.Layout.Filesystems {
		if fs.Type != "vfat" && fs.Type != "fat" {
			continue
		}
		_, p := i.in.Layout.Partition(fs.Base)
		if fs.MountPoint == "/boot/efi" || (p != nil && strings.EqualFold(p.GPTType, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B")) {
			for _, v := range i.in.Volumes {
				if v.Node == fs.Base {
					i.esp = &v
					return true
				}
			}
		}
	}
	return false
}

func (i *install) cmd(argv ...string) error {
	_, err := i.runner.Output(i.ctx, shell.Command{Argv: argv, Prefix: "bootloader", Env: append(os.Environ(), disk.FATEnv(i.in.SourceDateEpoch)...)})
	return err
}

// inImage is the host path of p in the image, its symlinks resolved
// inside the image: what the bootloader reads from or writes into the
// image never reaches a host file.
func (i *install) inImage(p string) (string, error) {
	return safepath.InRoot("image path", i.in.Root, p)
}

func (i *install) modulesDir(platform string) (string, error) {
	imageGrub, err := i.inImage("/usr/lib/grub")
	if err != nil {
		return "", err
	}
	dirs := []string{imageGrub, "/usr/lib/grub"}
	if i.in.ModulesDir != "" {
		dirs = []string{i.in.ModulesDir}
	}
	for _, d := range dirs {
		p := filepath.Join(d, platform)
		if _, err := os.Stat(filepath.Join(p, "normal.mod")); err == nil {
			return p, nil
		}
	}
	pkg := map[string]string{"i386-pc": "grub-pc-bin", "x86_64-efi": "grub-efi-amd64-bin"}[platform]
	return "", fmt.Errorf("no GRUB %s modules in %s (install %s in the image or on the host)", platform, strings.Join(dirs, " or "), pkg)
}

// embeddedConfig finds the filesystem holding /boot and sets the prefix.
func (i *install) embeddedConfig() string {
	prefix := "/boot/grub"
	if i.boot.MountPoint == "/boot" {
		prefix = "/grub"
	}
	search := "search --no-floppy --fs-uuid --set=root " + i.boot.UUID
	if i.boot.UUID == "" {
		search = "search --no-floppy --label --set=root " + i.boot.Label
	}
	return search + "\nset prefix=($root)" + prefix + "\n"
}

func (i *install) mkimage(platform, out string, modules []string) error {
	dir, err := i.modulesDir(platform)
	if err != nil {
		return err
	}
	cfg := filepath.Join(i.work, "embedded-"+platform+".cfg")
	if err := os.WriteFile(cfg, []byte(i.embeddedConfig()), 0o644); err != nil {
		return err
	}
	argv := append([]string{"grub-mkimage", "-d", dir, "-O", platform, "-o", out, "-c", cfg, "-p", "/boot/grub"}, modules...)
	if err := i.cmd(argv...); err != nil {
		return err
	}
	// grub-install copies the platform's modules next to grub.cfg.
	dst, err := i.inImage("/boot/grub/" + platform)
	if err != nil {
		return err
	}
	return copyModules(dir, dst)
}

func (i *install) installBIOS(g *gap) error {
	core := filepath.Join(i.work, "core.img")
	if err := i.mkimage("i386-pc", core, biosModules); err != nil {
		return err
	}
	dir, _ := i.modulesDir("i386-pc")
	bootImg, err := os.ReadFile(filepath.Join(dir, "boot.img"))
	if err != nil {
		return err
	}
	coreImg, err := os.ReadFile(core)
	if err != nil {
		return err
	}
	if len(bootImg) != 512 || len(coreImg) < 1024 {
		return fmt.Errorf("unexpected boot.img (%d bytes) or core.img (%d bytes)", len(bootImg), len(coreImg))
	}
	if pad := len(coreImg) % 512; pad != 0 {
		coreImg = append(coreImg, make([]byte, 512-pad)...)
	}
	nsec := int64(len(coreImg) / 512)
	if nsec > g.sectors {
		return fmt.Errorf("core.img needs %d sectors, the space for it has %d", nsec, g.sectors)
	}
	patchBoot(bootImg, g.start)
	patchCore(coreImg, g.start)
	f, err := os.OpenFile(i.in.Image, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(coreImg, g.start*512); err != nil {
		f.Close()
		return err
	}
	// Bytes 440.. hold the disk signature and the partition table.
	if _, err := f.WriteAt(bootImg[:440], 0); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	i.res.BIOS, i.res.CoreSector, i.res.CoreSectors = true, g.start, nsec
	return nil
}

// patchBoot points boot.img at core.img (see the package comment).
func patchBoot(b []byte, coreSector int64) {
	binary.LittleEndian.PutUint64(b[0x5c:], uint64(coreSector))
	b[0x64] = 0xff
	b[0x66], b[0x67] = 0x90, 0x90
}

// patchCore writes core.img's blocklist for a contiguous placement.
func patchCore(c []byte, coreSector int64) {
	nsec := len(c) / 512
	clear(c[0x1e8:0x1f4])
	binary.LittleEndian.PutUint64(c[0x1f4:], uint64(coreSector+1))
	binary.LittleEndian.PutUint16(c[0x1fc:], uint16(nsec-1))
	binary.LittleEndian.PutUint16(c[0x1fe:], 0x820)
}

func (i *install) installUEFI() error {
	grubEFI := filepath.Join(i.work, "grubx64.efi")
	if err := i.mkimage("x86_64-efi", grubEFI, efiModules); err != nil {
		return err
	}
	bootEFI := grubEFI
	shim, err1 := i.inImage("/usr/lib/shim/shimx64.efi.signed")
	signed, err2 := i.inImage("/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed")
	if err1 == nil && err2 == nil && exists(shim) && exists(signed) {
		bootEFI, grubEFI = shim, signed
		i.res.Shim = true
	}
	stub := filepath.Join(i.work, "grub.cfg")
	if err := os.WriteFile(stub, []byte(i.embeddedConfig()+"configfile $prefix/grub.cfg\n"), 0o644); err != nil {
		return err
	}
	img := fmt.Sprintf("%s@@%d", i.in.Image, i.esp.Offset)
	if err := i.cmd("mmd", "-D", "s", "-i", img, "::/EFI", "::/EFI/BOOT", "::/EFI/debian"); err != nil {
		return err
	}
	for _, c := range [][2]string{{bootEFI, "::/EFI/BOOT/BOOTX64.EFI"}, {grubEFI, "::/EFI/debian/grubx64.efi"}, {stub, "::/EFI/debian/grub.cfg"}} {
		if err := i.cmd("mcopy", "-o", "-i", img, c[0], c[1]); err != nil {
			return err
		}
	}
	if i.res.Shim {
		// shim loads grubx64.efi from its own directory.
		if err := i.cmd("mcopy", "-o", "-i", img, grubEFI, "::/EFI/BOOT/grubx64.efi"); err != nil {
			return err
		}
	}
	i.res.UEFI = true
	return nil
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func copyModules(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !(strings.HasSuffix(n, ".mod") || strings.HasSuffix(n, ".lst")) {
			continue
		}
		if err := copyFile(filepath.Join(src, n), filepath.Join(dst, n)); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// kernels lists the kernel versions in dir (vmlinuz-VERSION), newest
// first by version order.
func kernels(dir string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, "vmlinuz-*"))
	var vs []string
	for _, p := range m {
		vs = append(vs, strings.TrimPrefix(filepath.Base(p), "vmlinuz-"))
	}
	sort.Slice(vs, func(a, b int) bool { return versionLess(vs[b], vs[a]) })
	return vs
}

// versionLess compares version strings piecewise: digit runs numerically,
// everything else bytewise (enough for kernel versions).
func versionLess(a, b string) bool {
	for a != "" && b != "" {
		da, ra := splitRun(a)
		db, rb := splitRun(b)
		if da != db {
			if isDigits(da) && isDigits(db) {
				if len(strings.TrimLeft(da, "0")) != len(strings.TrimLeft(db, "0")) {
					return len(strings.TrimLeft(da, "0")) < len(strings.TrimLeft(db, "0"))
				}
				return strings.TrimLeft(da, "0") < strings.TrimLeft(db, "0")
			}
			return da < db
		}
		a, b = ra, rb
	}
	return len(a) < len(b)
}

func splitRun(s string) (string, string) {
	d := s[0] >= '0' && s[0] <= '9'
	n := 1
	for n < len(s) && (s[n] >= '0' && s[n] <= '9') == d {
		n++
	}
	return s[:n], s[n:]
}

func isDigits(s string) bool { return s != "" && s[0] >= '0' && s[0] <= '9' }
