package elements

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mellanox, nm-dhcp-ib-interfaces and ubuntu-signed in a chroot of a real
// Debian system: the modules appended to /etc/modules, the udev rule, the
// InfiniBand connection profile (root only), the signed kernel's version
// (the newest by version; a clear failure without one).
func TestHardwareElementsInChroot(t *testing.T) {
	t.Parallel()
	hooks := hooksTree(t, "mellanox", "nm-dhcp-ib-interfaces", "ubuntu-signed")
	steps := `
h=/tmp/in_target.d
printf 'loop\n' > /etc/modules
$h/install.d/65-mellanox
$h/install.d/50-dhcp-ib-interfaces
stat -c '%a %U %G' /etc/NetworkManager/system-connections/infiniband.nmconnection > /var/log/nm-mode

if $h/post-install.d/90-get-signed-kernel 2>/var/log/signed-none; then exit 9; fi
touch /boot/vmlinuz-6.8.0-9-generic /boot/vmlinuz-6.8.0-9-generic.efi.signed /boot/vmlinuz-6.8.0-10-generic.efi.signed /boot/vmlinuz-6.8.0-10-generic
$h/post-install.d/90-get-signed-kernel
`
	up, out := overlayChroot(t, hooks, steps)
	read := func(p string) string { return readUp(t, up, out, p) }
	if got, want := read("etc/modules"), "loop\nmlx4_en\nmlx4_ib\nib_ipoib\nmlx5_ib\nib_umad\nib_uverbs\n"; got != want {
		t.Errorf("/etc/modules = %q, want %q", got, want)
	}
	rule := read("etc/udev/rules.d/81-mellanox.rules")
	for _, m := range []string{"mlx4_en", "mlx4_ib", "ib_ipoib", "mlx5_ib", "ib_umad", "ib_uverbs"} {
		if !strings.Contains(rule, `SUBSYSTEM=="net", RUN+="/sbin/modprobe `+m+`"`) {
			t.Errorf("the udev rule does not load %s:\n%s", m, rule)
		}
	}
	if !strings.Contains(rule, "ACTION!=\"add\", GOTO=\"drivers_end\"") || !strings.HasSuffix(rule, "LABEL=\"drivers_end\"\n") {
		t.Errorf("the udev rule acts on more than added devices:\n%s", rule)
	}
	// The ramdisk's copy of the rule is the image's.
	if b, _ := os.ReadFile(filepath.Join(hooks, "udev.d", "81-mellanox-drivers.rules")); string(b) != rule {
		t.Errorf("udev.d/81-mellanox-drivers.rules differs from the image's rule")
	}
	if got := read("var/log/nm-mode"); got != "600 root root\n" {
		t.Errorf("the connection profile's mode and owner: %q", got)
	}
	profile := iniSections(read("etc/NetworkManager/system-connections/infiniband.nmconnection"))
	for key, want := range map[string]string{
		"connection.type": "infiniband", "connection.id": "infiniband", "connection.multi-connect": "3",
		"infiniband.transport-mode": "datagram", "ipv4.method": "auto", "ipv6.method": "auto",
	} {
		if profile[key] != want {
			t.Errorf("profile %s = %q, want %q (%v)", key, profile[key], want, profile)
		}
	}
	if _, ok := profile["connection.interface-name"]; ok {
		t.Error("the profile is bound to one interface")
	}
	if got := read("dib-signed-kernel-version"); got != "DIB_SIGNED_KERNEL_VERSION=6.8.0-10-generic.efi.signed\n" {
		t.Errorf("/dib-signed-kernel-version = %q", got)
	}
	if got := read("var/log/signed-none"); !strings.Contains(got, "no signed kernel (/boot/vmlinuz-*.efi.signed)") {
		t.Errorf("without a signed kernel: %q", got)
	}
}

// iniSections reads a keyfile: "section.key" → value.
func iniSections(s string) map[string]string {
	out := map[string]string{}
	section := ""
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			section = l[1 : len(l)-1]
		default:
			if k, v, ok := strings.Cut(l, "="); ok {
				out[section+"."+k] = v
			}
		}
	}
	return out
}

// mellanox's ramdisk /init fragment loads each module; one the kernel
// lacks is reported and the rest still load.
func TestMellanoxRamdiskInit(t *testing.T) {
	hooks := hooksTree(t, "mellanox")
	bin, calls := fakeBin(t)
	writeFile(t, filepath.Join(bin, "modprobe"), "#!/bin/sh\necho \"modprobe $*\" >> '"+calls+"'\n[ \"$1\" != mlx4_ib ]\n", 0o755)
	script := filepath.Join(t.TempDir(), "init")
	writeFile(t, script, "#!/bin/sh\nmsg() { echo \"ramdisk: $*\"; }\n"+readFile(t, filepath.Join(hooks, "init.d", "01-mellanox")), 0o755)
	r := runScript(t, script, map[string]string{"PATH": bin + ":" + os.Getenv("PATH")})
	if r.code != 0 || r.out != "ramdisk: mellanox: no module mlx4_ib\n" {
		t.Errorf("exit %d, output %q", r.code, r.out)
	}
	if got, want := readFile(t, calls), "modprobe mlx4_en\nmodprobe mlx4_ib\nmodprobe ib_ipoib\nmodprobe mlx5_ib\nmodprobe ib_umad\nmodprobe ib_uverbs\n"; got != want {
		t.Errorf("calls %q, want %q", got, want)
	}
}

// The ramdisk element with ubuntu-signed's /dib-signed-kernel-version and
// mellanox, in a chroot of a real Debian system (stand-in kernel and
// modules; depmod a stand-in): the ramdisk's kernel is the signed one, its
// modules (InfiniBand's among them) those of the version without
// .efi.signed, mellanox's /init fragment and udev rule are in it, and the
// version file is gone from the image.
func TestRamdiskSignedKernelInChroot(t *testing.T) {
	t.Parallel()
	requireTool(t, "busybox")
	hooks := hooksTree(t, "ramdisk-base", "ramdisk", "mellanox")
	writeFile(t, filepath.Join(hooks, "bin", "depmod"), "#!/bin/sh\necho \"depmod $*\" >> /var/log/depmod\n", 0o755)
	steps := `
h=/tmp/in_target.d
# The chroot has no /dev: what bash's process substitution and the hook use.
mkdir -p /dev
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
[ -c /dev/null ] || { rm -f /dev/null; mknod -m 0666 /dev/null c 1 3; }
mkdir -p /tmp/ramdisk-build
cp -r $h/extra-data.d/scripts /tmp/ramdisk-build/
v=6.8.0-10-generic
echo plain > /boot/vmlinuz-$v
echo signed > /boot/vmlinuz-$v.efi.signed
mkdir -p /lib/modules/$v/kernel/drivers/infiniband/ulp/ipoib /lib/modules/$v/kernel/drivers/net/ethernet/mellanox/mlx5/core
echo ko > /lib/modules/$v/kernel/drivers/infiniband/ulp/ipoib/ib_ipoib.ko
echo ko > /lib/modules/$v/kernel/drivers/net/ethernet/mellanox/mlx5/core/mlx5_core.ko
echo "DIB_SIGNED_KERNEL_VERSION=$v.efi.signed" > /dib-signed-kernel-version
$h/post-install.d/99-build-ramdisk
cp /tmp/kernel /var/log/kernel
zcat /tmp/ramdisk | busybox cpio -t 2>/dev/null | sort > /var/log/ramdisk-files
mkdir /tmp/x && cd /tmp/x && zcat /tmp/ramdisk | busybox cpio -i init 2>/dev/null && cp init /var/log/ramdisk-init
`
	up, out := overlayChroot(t, hooks, steps)
	read := func(p string) string { return readUp(t, up, out, p) }
	if got := read("var/log/kernel"); got != "signed\n" {
		t.Errorf("the ramdisk's kernel is %q, want the signed one", got)
	}
	if got := read("var/log/depmod"); !strings.HasSuffix(got, " 6.8.0-10-generic\n") {
		t.Errorf("depmod %q, want the modules' version", got)
	}
	files := read("var/log/ramdisk-files")
	for _, want := range []string{
		"lib/modules/6.8.0-10-generic/kernel/drivers/infiniband/ulp/ipoib/ib_ipoib.ko",
		"lib/modules/6.8.0-10-generic/kernel/drivers/net/ethernet/mellanox/mlx5/core/mlx5_core.ko",
		"lib/udev/rules.d/81-mellanox-drivers.rules",
	} {
		if !strings.Contains(files, want+"\n") {
			t.Errorf("the ramdisk lacks %s:\n%s", want, files)
		}
	}
	if init := read("var/log/ramdisk-init"); !strings.Contains(init, "# --- init.d/01-mellanox\n") {
		t.Errorf("/init lacks mellanox's fragment:\n%s", init)
	}
	if _, err := os.Lstat(filepath.Join(up, "dib-signed-kernel-version")); err == nil {
		t.Error("/dib-signed-kernel-version left in the image")
	}
}

// baremetal with a signed kernel: NAME.vmlinuz is the signed kernel,
// NAME.initrd the initramfs of its version, the version file is removed;
// without the file, the newest kernel with an initramfs as before; a
// signed version without an initramfs is an error that says so.
func TestBaremetalSignedKernel(t *testing.T) {
	hooks := hooksTree(t, "baremetal")
	hook := filepath.Join(hooks, "cleanup.d", "99-extract-kernel-and-ramdisk")
	root, out := t.TempDir(), t.TempDir()
	v := "6.8.0-10-generic"
	writeFile(t, filepath.Join(root, "boot", "vmlinuz-"+v), "plain", 0o644)
	writeFile(t, filepath.Join(root, "boot", "vmlinuz-"+v+".efi.signed"), "signed", 0o644)
	writeFile(t, filepath.Join(root, "boot", "initrd.img-"+v), "initrd", 0o644)
	name := filepath.Join(out, "img")
	env := map[string]string{"TARGET_ROOT": root, "IMAGE_NAME": name}

	if r := runScript(t, hook, env); r.code != 0 || readFile(t, name+".vmlinuz") != "plain" {
		t.Fatalf("unsigned: exit %d, %s", r.code, r.out)
	}
	writeFile(t, filepath.Join(root, "dib-signed-kernel-version"), "DIB_SIGNED_KERNEL_VERSION="+v+".efi.signed\n", 0o644)
	if r := runScript(t, hook, env); r.code != 0 {
		t.Fatalf("signed: exit %d, %s", r.code, r.out)
	}
	if got := readFile(t, name+".vmlinuz"); got != "signed" {
		t.Errorf("NAME.vmlinuz is %q, want the signed kernel", got)
	}
	if got := readFile(t, name+".initrd"); got != "initrd" {
		t.Errorf("NAME.initrd is %q", got)
	}
	if _, err := os.Stat(filepath.Join(root, "dib-signed-kernel-version")); err == nil {
		t.Error("dib-signed-kernel-version left in the image")
	}
	env["DIB_SIGNED_KERNEL_VERSION"] = "6.8.0-11-generic.efi.signed"
	if r := runScript(t, hook, env); r.code == 0 || !strings.Contains(r.out, "signed kernel 6.8.0-11-generic.efi.signed: no ") {
		t.Errorf("a missing signed kernel: exit %d, %s", r.code, r.out)
	}
}
