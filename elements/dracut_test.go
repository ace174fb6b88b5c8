package elements

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestDracutRamdiskInChroot runs dracut-ramdisk's in-image hooks on an
// overlay of the host's Debian, with a stand-in dracut that records its
// arguments and the module and files it was given: the drivers of every
// dracut-drivers.d file, the binaries of binary-deps.d, the module
// 80deploy-ramdisk whose pre-mount hook is the ramdisk's /init (with the
// init.d fragments and init-end), busybox's getty and login, the kernel.
func TestDracutRamdiskInChroot(t *testing.T) {
	t.Parallel()
	hooks := hooksTree(t, "ramdisk-base", "dracut-ramdisk")
	writeFile(t, filepath.Join(hooks, "dracut-drivers.d", "extra"), "e1000e\nigb\n", 0o644)
	writeFile(t, filepath.Join(hooks, "bin", "busybox"), "#!/bin/sh\nexit 0\n", 0o755)
	writeFile(t, filepath.Join(hooks, "bin", "dracut"), `#!/bin/bash
printf '%s\n' "$@" > /var/log/dracut-args
cp -a /usr/lib/dracut/modules.d/80deploy-ramdisk /var/log/module
while [ $# -gt 1 ]; do
    if [ "$1" = --include ]; then (cd "$2" && find . | sort > /var/log/stage; cat usr/local/sbin/getty > /var/log/getty; readlink usr/local/sbin/login > /var/log/login); fi
    shift
done
echo initramfs > "$1"
`, 0o755)
	steps := `
h=/tmp/in_target.d
mkdir -p /lib/modules/6.1.0-9-amd64 /lib/modules/6.1.0-7-amd64
echo kernel-9 > /boot/vmlinuz-6.1.0-9-amd64
echo kernel-7 > /boot/vmlinuz-6.1.0-7-amd64
echo kernel-11 > /boot/vmlinuz-6.1.0-11-amd64
TMP_MOUNT_PATH=/ $h/extra-data.d/01-inject-ramdisk-build-files
printf '/usr/bin/tail\n/usr/bin/setsid\n' > /tmp/ramdisk-build/binaries
$h/post-install.d/01-ensure-drivers
cp /etc/dib_dracut_drivers /var/log/drivers
$h/post-install.d/99-build-dracut-ramdisk
cp /tmp/kernel /var/log/kernel
cp /tmp/ramdisk /var/log/ramdisk
test ! -e /usr/lib/dracut/modules.d/80deploy-ramdisk
test ! -e /tmp/ramdisk-build/dracut-root
`
	up, out := overlayChroot(t, hooks, steps)
	read := func(p string) string { return readUp(t, up, out, p) }
	if got := read("var/log/drivers"); got != "virtio virtio_pci virtio_net virtio_blk e1000e igb\n" {
		t.Errorf("drivers %q", got)
	}
	args := strings.Split(strings.TrimSpace(read("var/log/dracut-args")), "\n")
	want := []string{"-N", "--force", "--quiet", "--install", "/usr/bin/tail /usr/bin/setsid ",
		"--kernel-cmdline", "rd.shell rd.neednet=1 rd.driver.pre=ahci", "--include", "/tmp/ramdisk-build/dracut-root", "/",
		"--kver", "6.1.0-9-amd64", "--add-drivers", "virtio virtio_pci virtio_net virtio_blk e1000e igb",
		"--add", "deploy-ramdisk", "-o", "dash plymouth systemd systemd-initrd dracut-systemd", "/tmp/ramdisk"}
	if strings.Join(args, "|") != strings.Join(want, "|") {
		t.Errorf("dracut arguments\n%q\nwant\n%q", args, want)
	}
	if got := read("var/log/kernel"); got != "kernel-9\n" {
		t.Errorf("/tmp/kernel is %q, want the newest kernel with modules", got)
	}
	if got := read("var/log/ramdisk"); got != "initramfs\n" {
		t.Errorf("/tmp/ramdisk %q", got)
	}
	initSh := read("var/log/module/init.sh")
	for _, frag := range []string{"# --- init.d/00-override-troubleshoot", "emergency_shell", "# --- init.d/20-init-variables",
		"# --- init.d/40-check-network-ready", "# --- init-end", "getty -L 115200 console"} {
		if !strings.Contains(initSh, frag) {
			t.Errorf("init.sh lacks %q", frag)
		}
	}
	if setup := read("var/log/module/module-setup.sh"); !strings.Contains(setup, `inst_hook pre-mount 50 "$moddir/init.sh"`) {
		t.Errorf("module-setup.sh:\n%s", setup)
	}
	if cmdline := read("var/log/module/deploy-cmdline.sh"); !strings.Contains(cmdline, "rootok=1") {
		t.Errorf("deploy-cmdline.sh:\n%s", cmdline)
	}
	stage := read("var/log/stage")
	for _, f := range []string{"./etc/passwd", "./etc/shadow", "./etc/hostname", "./usr/lib/dib-ramdisk/init-func", "./usr/lib/udev/rules.d/60-persistent-storage.rules", "./usr/local/sbin/getty", "./usr/local/sbin/login"} {
		if !strings.Contains(stage, f+"\n") {
			t.Errorf("staged files lack %s:\n%s", f, stage)
		}
	}
	if got := read("var/log/getty"); !strings.Contains(got, "exec /tmp/in_target.d/bin/busybox getty -l /usr/local/sbin/login \"$@\"") {
		t.Errorf("getty:\n%s", got)
	}
	if got := read("var/log/login"); got != "/tmp/in_target.d/bin/busybox\n" {
		t.Errorf("login links to %q", got)
	}
}
