package elements

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/pkgs"
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
rm -f /usr/sbin/cryptsetup /sbin/cryptsetup
$h/post-install.d/99-build-dracut-ramdisk
cp /tmp/kernel /var/log/kernel
cp /tmp/ramdisk /var/log/ramdisk
test ! -e /usr/lib/dracut/modules.d/80deploy-ramdisk
test ! -e /tmp/ramdisk-build/dracut-root
# With cryptsetup in the image, dracut may keep its crypt module.
printf '#!/bin/sh\n' > /usr/local/sbin/cryptsetup
chmod 0755 /usr/local/sbin/cryptsetup
cp /var/log/dracut-args /var/log/dracut-args-no-cryptsetup
$h/post-install.d/99-build-dracut-ramdisk
cp /var/log/dracut-args /var/log/dracut-args-cryptsetup
`
	up, out := overlayChroot(t, hooks, steps)
	read := func(p string) string { return readUp(t, up, out, p) }
	if got := read("var/log/drivers"); got != "virtio virtio_pci virtio_net virtio_blk e1000e igb\n" {
		t.Errorf("drivers %q", got)
	}
	// network-legacy is the network handler (dracut would take
	// systemd-networkd, which needs the systemd it is told to omit); the
	// crypt module is omitted when the image has no cryptsetup.
	for file, omit := range map[string]string{
		"var/log/dracut-args-no-cryptsetup": "dash plymouth systemd systemd-initrd dracut-systemd crypt",
		"var/log/dracut-args-cryptsetup":    "dash plymouth systemd systemd-initrd dracut-systemd",
	} {
		args := strings.Split(strings.TrimSpace(read(file)), "\n")
		want := []string{"-N", "--force", "--quiet", "--install", "/usr/bin/tail /usr/bin/setsid ",
			"--kernel-cmdline", "rd.shell rd.neednet=1 rd.driver.pre=ahci", "--include", "/tmp/ramdisk-build/dracut-root", "/",
			"--kver", "6.1.0-9-amd64", "--add-drivers", "virtio virtio_pci virtio_net virtio_blk e1000e igb",
			"--add", "deploy-ramdisk network-legacy", "-o", omit, "/tmp/ramdisk"}
		if strings.Join(args, "|") != strings.Join(want, "|") {
			t.Errorf("%s: dracut arguments\n%q\nwant\n%q", file, args, want)
		}
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
	setup := read("var/log/module/module-setup.sh")
	if !strings.Contains(setup, `inst_hook pre-mount 50 "$moddir/init.sh"`) {
		t.Errorf("module-setup.sh:\n%s", setup)
	}
	// The module's dependencies as dracut reads them: its network.
	if got, err := exec.Command("bash", "-c", `. "$0"; depends`, filepath.Join(hooks, "extra-data.d/scripts/module/module-setup.sh")).Output(); err != nil || string(got) != "network\n" {
		t.Errorf("deploy-ramdisk depends on %q (%v), want network", got, err)
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

// TestDracutRamdiskPackages: 20-install-dracut-deps installs dracut, its
// network module and what dracut's network-legacy handler needs (dhclient,
// arping, pgrep) with the tools of binary-deps.d, each under the
// distribution's name from the element's pkg-map, with INITRD=No so that
// the dracut package makes no initramfs of the image.
func TestDracutRamdiskPackages(t *testing.T) {
	t.Parallel()
	raw, err := fs.ReadFile(FS(), "dracut-ramdisk/pkg-map")
	if err != nil {
		t.Fatal(err)
	}
	m, err := pkgs.ParseMap(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		target pkgs.Target
		want   string
	}{
		{pkgs.Target{Distro: "debian", Family: "debian", Release: "bookworm"},
			"dracut dracut-network wget busybox iproute2 netcat-traditional tftp-hpa iputils-ping isc-dhcp-client iputils-arping procps"},
		// Ubuntu's dracut has the network module in the same package.
		{pkgs.Target{Distro: "ubuntu", Family: "debian", Release: "jammy"},
			"dracut wget busybox iproute2 netcat-traditional tftp-hpa iputils-ping isc-dhcp-client iputils-arping procps"},
		{pkgs.Target{Distro: "centos", Family: "redhat", Release: "9-stream"},
			"dracut dracut-network wget busybox iproute2 nmap-ncat tftp iputils dhcp-client iputils procps-ng"},
		{pkgs.Target{Distro: "opensuse", Family: "suse", Release: "15.5"},
			"dracut dracut-network wget busybox iproute2 ncat tftp iputils dhcp-client iputils procps"},
	} {
		t.Run(c.target.Distro, func(t *testing.T) {
			hooks := hooksTree(t, "dracut-ramdisk", "pkg-map")
			// The element's pkg-map as dib resolves it for the target
			// (compiler: dib-pkg-map/ELEMENT, "name<TAB>packages").
			var resolved strings.Builder
			for _, name := range m.Names() {
				mapped, _, _ := m.Lookup(c.target, name)
				resolved.WriteString(name + "\t" + strings.Join(mapped, " ") + "\n")
			}
			writeFile(t, filepath.Join(hooks, "dib-pkg-map", "dracut-ramdisk"), resolved.String(), 0o644)
			fake := t.TempDir()
			log := fakeCommand(t, fake, "install-packages", `echo "INITRD=$INITRD" > "$0.env"`)
			r := runScript(t, filepath.Join(hooks, "install.d", "20-install-dracut-deps"), map[string]string{
				"TMP_HOOKS_PATH": hooks,
				"DISTRO_NAME":    c.target.Distro,
				"PATH":           fake + ":" + filepath.Join(hooks, "bin") + ":" + os.Getenv("PATH"),
			})
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.out)
			}
			if got := strings.TrimSpace(readFile(t, log)); got != c.want {
				t.Errorf("install-packages %q\nwant           %q", got, c.want)
			}
			// No initramfs of the image from the dracut package's trigger.
			if got := readFile(t, filepath.Join(fake, "install-packages.env")); got != "INITRD=No\n" {
				t.Errorf("install-packages ran with %q, want INITRD=No", got)
			}
		})
	}
}
