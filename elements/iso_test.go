package elements

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestIsoBuild runs the iso element's cleanup.d on the host as a ramdisk
// build reaches it: NAME.kernel and NAME.initramfs beside the outputs,
// the boot loaders (stand-ins here; the e2e test boots the real ones) in
// $TARGET_ROOT/tmp/bootloader_files. The ISO has a BIOS and a UEFI El
// Torito image and a hybrid MBR; the EFI image is a FAT file system with
// shim as BOOTX64.EFI, GRUB beside it and the GRUB menu; both menus boot
// the kernel with boot_method=vmedia and DIB_DEPLOY_ISO_KERNEL_CMDLINE_ARGS.
func TestIsoBuild(t *testing.T) {
	for _, tool := range []string{"xorriso", "mkfs.vfat", "mcopy", "mmd"} {
		requireTool(t, tool)
	}
	hooks := hooksTree(t, "iso")
	root, out := t.TempDir(), t.TempDir()
	loaders := filepath.Join(root, "tmp", "bootloader_files")
	for _, f := range []string{"bootx64.efi", "grubx64.efi", "isolinux.bin", "ldlinux.c32", "isohdpfx.bin"} {
		writeFile(t, filepath.Join(loaders, f), strings.Repeat(f, 200), 0o644)
	}
	name := filepath.Join(out, "deploy")
	writeFile(t, name+".kernel", "kernel", 0o644)
	writeFile(t, name+".initramfs", "initramfs", 0o644)
	env := map[string]string{"TARGET_ROOT": root, "IMAGE_NAME": name, "TMP_BUILD_DIR": t.TempDir(),
		"IMAGE_ELEMENT": "debian-minimal ramdisk-base ramdisk iso", "DISTRO_NAME": "debian",
		"DIB_DEPLOY_ISO_KERNEL_CMDLINE_ARGS": "console=ttyS0,115200"}
	r := runScript(t, filepath.Join(hooks, "cleanup.d", "100-build-iso"), env)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.out)
	}
	iso := name + ".iso"
	report, err := exec.Command("xorriso", "-indev", iso, "-report_el_torito", "plain", "-report_system_area", "plain").CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso: %v\n%s", err, report)
	}
	for _, want := range []string{"/isolinux/isolinux.bin", "/isolinux/efiboot.img", "BIOS  y   none", "UEFI  y   none", "MBR partition table", "GPT"} {
		if !strings.Contains(string(report), want) {
			t.Errorf("the ISO's boot report lacks %q:\n%s", want, report)
		}
	}
	extract := t.TempDir()
	if b, err := exec.Command("xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/", extract).CombinedOutput(); err != nil {
		t.Fatalf("xorriso -extract: %v\n%s", err, b)
	}
	if got := readFile(t, filepath.Join(extract, "initrd")); got != "initramfs" {
		t.Errorf("/initrd on the ISO is %q", got)
	}
	if cfg := readFile(t, filepath.Join(extract, "isolinux", "isolinux.cfg")); !strings.Contains(cfg, "APPEND initrd=/initrd boot_method=vmedia console=ttyS0,115200 --\n") {
		t.Errorf("isolinux.cfg:\n%s", cfg)
	}
	efi := filepath.Join(extract, "isolinux", "efiboot.img")
	for file, want := range map[string]string{
		"::/EFI/BOOT/BOOTX64.EFI": strings.Repeat("bootx64.efi", 200),
		"::/EFI/BOOT/grubx64.efi": strings.Repeat("grubx64.efi", 200),
	} {
		if b, err := exec.Command("mcopy", "-n", "-i", efi, file, "-").Output(); err != nil || string(b) != want {
			t.Errorf("%s in efiboot.img: %v (%d bytes)", file, err, len(b))
		}
	}
	grub, err := exec.Command("mcopy", "-n", "-i", efi, "::/EFI/BOOT/grub.cfg", "-").Output()
	if vendor, verr := exec.Command("mcopy", "-n", "-i", efi, "::/EFI/debian/grub.cfg", "-").Output(); verr != nil || string(vendor) != string(grub) {
		t.Errorf("Debian's signed GRUB reads /EFI/debian/grub.cfg (%v):\n%s", verr, vendor)
	}
	if err != nil || !strings.Contains(string(grub), "search --no-floppy --set=root --label VMEDIA_BOOT_ISO\n") ||
		!strings.Contains(string(grub), "linux /vmlinuz boot_method=vmedia console=ttyS0,115200 --\n") {
		t.Errorf("grub.cfg in efiboot.img (%v):\n%s", err, grub)
	}
	if _, err := os.Stat(loaders); !os.IsNotExist(err) {
		t.Errorf("the boot loaders are left in the tree: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(out, ".*")); len(left) > 0 {
		t.Errorf("temporary files left beside the outputs: %v", left)
	}

	// A baremetal image's ISO is NAME-boot.iso with its root by label.
	os.RemoveAll(loaders)
	for _, f := range []string{"bootx64.efi", "grubx64.efi", "isolinux.bin"} {
		writeFile(t, filepath.Join(loaders, f), strings.Repeat(f, 200), 0o644)
	}
	writeFile(t, name+".vmlinuz", "kernel", 0o644)
	writeFile(t, name+".initrd", "initrd", 0o644)
	env["IMAGE_ELEMENT"] = "debian-minimal vm baremetal iso"
	env["DIB_BOOT_LABEL"] = "img-rootfs"
	env["DIB_BOOT_ISO_KERNEL_CMDLINE_ARGS"] = "quiet"
	if r := runScript(t, filepath.Join(hooks, "cleanup.d", "100-build-iso"), env); r.code != 0 {
		t.Fatalf("baremetal: exit %d: %s", r.code, r.out)
	}
	dst := filepath.Join(t.TempDir(), "isolinux.cfg")
	if b, err := exec.Command("xorriso", "-osirrox", "on", "-indev", name+"-boot.iso", "-extract", "/isolinux/isolinux.cfg", dst).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	cfg := readFile(t, dst)
	if !strings.Contains(cfg, "APPEND initrd=/initrd root=LABEL=img-rootfs quiet --\n") {
		t.Errorf("baremetal isolinux.cfg:\n%s", cfg)
	}

	// Without a kernel-making element the hook says what is missing.
	env["IMAGE_ELEMENT"] = "debian-minimal vm iso"
	if r := runScript(t, filepath.Join(hooks, "cleanup.d", "100-build-iso"), env); r.code == 0 || !strings.Contains(r.out, "use the iso element with ramdisk, baremetal or ironic-python-agent") {
		t.Errorf("no kernel: exit %d: %s", r.code, r.out)
	}
}
