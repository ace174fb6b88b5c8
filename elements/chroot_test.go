package elements

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// overlayChroot runs steps (a bash script) as root inside a chroot whose
// root is a copy-on-write overlay of the host's own root filesystem (a
// Debian system, like the images), with hooks bound read-only on
// /tmp/in_target.d, an empty tmpfs on /boot and /proc mounted, all in a
// private mount namespace. It returns the overlay's upper directory, where
// every change the steps made can be inspected, and the output.
func overlayChroot(t *testing.T, hooks, steps string, env ...string) (string, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
			t.Fatal("needs root (DIB_REQUIRE_INTEGRATION=1)")
		}
		t.Skip("needs root for mount namespaces and chroot")
	}
	for _, tool := range []string{"unshare", "chroot", "mount", "dpkg-divert", "useradd", "systemctl"} {
		requireTool(t, tool)
	}
	if _, err := os.Stat("/etc/debian_version"); err != nil {
		t.Skip("the host is not a Debian system")
	}
	base := t.TempDir()
	up, work, mnt := filepath.Join(base, "up"), filepath.Join(base, "work"), filepath.Join(base, "mnt")
	for _, d := range []string{up, work, mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(hooks, "test-steps.sh"), "set -eu\n"+steps, 0o755)
	driver := `set -eu
mount -t overlay overlay -o lowerdir=/,upperdir=` + up + `,workdir=` + work + ` ` + mnt + `
mount -t tmpfs tmpfs ` + mnt + `/boot
mount -t tmpfs tmpfs ` + mnt + `/tmp
mkdir -p ` + mnt + `/tmp/in_target.d
mount --bind ` + hooks + ` ` + mnt + `/tmp/in_target.d
mount -o remount,bind,ro ` + mnt + `/tmp/in_target.d
mount -t proc proc ` + mnt + `/proc
exec chroot ` + mnt + ` /usr/bin/env -i PATH=/tmp/in_target.d/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin ` +
		strings.Join(env, " ") + ` bash /tmp/in_target.d/test-steps.sh
`
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "bash", "-c", driver)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chroot steps failed: %v\n%s", err, out)
	}
	return up, string(out)
}

// TestChrootHooks runs the in-chroot hooks of several elements on a real
// Debian system (an overlay of the host) and checks what they did.
func TestChrootHooks(t *testing.T) {
	t.Parallel()
	hooks := hooksTree(t, "dpkg", "devuser", "dib-init-system", "install-static", "install-bin",
		"enable-serial-console", "sysprep", "pkg-map", "package-installs", "base")
	writeFile(t, filepath.Join(hooks, "devuser-ssh-authorized-keys"), "ssh-ed25519 AAAAtest user@host\n", 0o644)
	writeFile(t, filepath.Join(hooks, "init-scripts/systemd/dib-test.service"),
		"[Unit]\nDescription=test\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n", 0o644)
	writeFile(t, filepath.Join(hooks, "static/usr/local/sbin/dib-static-tool"), "#!/bin/sh\n", 0o755)
	writeFile(t, filepath.Join(hooks, "static/etc/dib-static.conf"), "x=1\n", 0o644)

	steps := `
h=/tmp/in_target.d
# A stand-in for initramfs-tools' update-initramfs that logs its calls.
cat > /usr/sbin/update-initramfs <<'X'
#!/bin/sh
echo "$*" >> /var/log/real-update-initramfs
X
chmod 755 /usr/sbin/update-initramfs
mkdir -p /lib/modules/9.9.9-dib
echo kernel > /boot/vmlinuz-9.9.9-dib

$h/pre-install.d/05-defer-update-initramfs
$h/pre-install.d/05-defer-update-initramfs   # twice: idempotent
# What packages do during installs: all deferred.
update-initramfs -u
update-initramfs -c -k 9.9.9-dib -b /boot
[ ! -e /var/log/real-update-initramfs ] || { echo "update-initramfs ran during installs"; exit 1; }
$h/post-install.d/99-update-initramfs
dpkg-divert --list /usr/sbin/update-initramfs > /var/log/diversions

$h/install.d/50-devuser
$h/install.d/10-install-static-files
$h/pre-install.d/01-install-bin
$h/install.d/20-install-init-scripts
$h/post-install.d/10-enable-init-scripts
$h/install.d/20-stty
echo 0123456789abcdef > /etc/machine-id
$h/finalise.d/99-clear-machine-id

# 99-apt-get-update: skipped while the lists are fresh, run after a change.
touch /var/lib/apt/lists/dib-test_Packages /var/lib/apt/dib-lists-updated
$h/pre-install.d/99-apt-get-update > /var/log/apt-update-1
mkdir -p /etc/apt/sources.list.d
touch /etc/apt/sources.list.d/dib-test.list
$h/pre-install.d/99-apt-get-update > /var/log/apt-update-2
`
	writeFile(t, filepath.Join(hooks, "bin", "apt-get"), "#!/bin/sh\necho \"$*\" >> /var/log/fake-apt-get\n", 0o755)
	up, out := overlayChroot(t, hooks, steps,
		"DIB_INIT_SYSTEM=systemd", "DIB_DEFER_INITRAMFS=1",
		"DIB_DEV_USER_USERNAME=dibtester", "DIB_DEV_USER_PASSWORD=s3cret", "DIB_DEV_USER_PWDLESS_SUDO=yes",
		"DIB_DEV_USER_SHELL=/bin/sh", "DIB_DEV_USER_GROUPS=dibgroup1,dibgroup2")
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(up, p))
		if err != nil {
			t.Errorf("%s: %v\n%s", p, err, out)
			return ""
		}
		return string(b)
	}

	t.Run("initramfs built once", func(t *testing.T) {
		if got := read("var/log/real-update-initramfs"); got != "-c -k 9.9.9-dib\n" {
			t.Errorf("real update-initramfs calls = %q, want one -c", got)
		}
		if got := read("var/log/diversions"); got != "" {
			t.Errorf("diversion left behind: %q", got)
		}
		if got := read("usr/sbin/update-initramfs"); !strings.Contains(got, "real-update-initramfs") {
			t.Errorf("update-initramfs not restored:\n%s", got)
		}
	})
	t.Run("devuser", func(t *testing.T) {
		passwd := read("etc/passwd")
		if !strings.Contains(passwd, "dibtester:") || !strings.Contains(passwd, ":/bin/sh\n") {
			t.Errorf("passwd lacks the user or shell:\n%s", passwd)
		}
		if shadow := read("etc/shadow"); !strings.Contains(shadow, "dibtester:$") {
			t.Errorf("no password hash for the user")
		}
		if got := read("etc/sudoers.d/dibtester"); got != "dibtester ALL=(ALL) NOPASSWD:ALL\n" {
			t.Errorf("sudoers = %q", got)
		}
		if group := read("etc/group"); !strings.Contains(group, "dibgroup1:x:") || !strings.Contains(group, "dibgroup2:x:") {
			t.Errorf("groups missing")
		}
		keys := filepath.Join(up, "home/dibtester/.ssh/authorized_keys")
		fi, err := os.Stat(keys)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("authorized_keys: %v %v", fi, err)
		}
	})
	t.Run("install-static", func(t *testing.T) {
		fi, err := os.Stat(filepath.Join(up, "usr/local/sbin/dib-static-tool"))
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("static tool: %v %v", fi, err)
		}
		if got := read("etc/dib-static.conf"); got != "x=1\n" {
			t.Errorf("static conf = %q", got)
		}
	})
	t.Run("install-bin", func(t *testing.T) {
		for _, b := range []string{"install-packages", "pkg-map", "package-installs", "dib-run-parts", "dib-init-system"} {
			fi, err := os.Stat(filepath.Join(up, "usr/local/bin", b))
			if err != nil || fi.Mode().Perm() != 0o755 {
				t.Errorf("/usr/local/bin/%s: %v %v", b, fi, err)
			}
		}
	})
	t.Run("init scripts installed and enabled", func(t *testing.T) {
		read("usr/lib/systemd/system/dib-test.service")
		if _, err := os.Lstat(filepath.Join(up, "etc/systemd/system/multi-user.target.wants/dib-test.service")); err != nil {
			t.Errorf("dib-test.service not enabled: %v\n%s", err, out)
		}
	})
	t.Run("serial getty", func(t *testing.T) {
		if _, err := os.Lstat(filepath.Join(up, "etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service")); err != nil {
			t.Errorf("serial-getty@ttyS0 not enabled: %v", err)
		}
	})
	t.Run("apt-get update only when sources changed", func(t *testing.T) {
		if got := read("var/log/apt-update-1"); !strings.Contains(got, "fresh") {
			t.Errorf("first run did not skip: %q", got)
		}
		if got := read("var/log/fake-apt-get"); got != "-q update\n" {
			t.Errorf("apt-get calls = %q, want one update", got)
		}
	})
	t.Run("machine-id emptied", func(t *testing.T) {
		if got := read("etc/machine-id"); got != "" {
			t.Errorf("machine-id = %q", got)
		}
	})
}

// TestChrootBootloader: finalise.d/50-bootloader on a root that is not a
// block device writes /etc/default/grub.d settings and a grub.cfg that finds
// the root filesystem by label, with the serial console.
func TestChrootBootloader(t *testing.T) {
	t.Parallel()
	requireTool(t, "grub-mkconfig")
	hooks := hooksTree(t, "bootloader", "pkg-map", "dpkg")
	steps := `
echo kernel > /boot/vmlinuz-9.9.9-dib
echo initrd > /boot/initrd.img-9.9.9-dib
echo kernel > /boot/vmlinuz-9.10.1-dib
. /tmp/in_target.d/environment.d/10-bootloader-default-cmdline
/tmp/in_target.d/finalise.d/50-bootloader
mkdir -p /var/log/dib-boot
cp -r /boot/. /var/log/dib-boot/
`
	up, out := overlayChroot(t, hooks, steps, "ARCH=amd64", "DISTRO_NAME=debian", "DIB_ROOT_LABEL=dibroot",
		"DIB_GRUB_TIMEOUT=7", "DIB_BOOTLOADER_SERIAL_CONSOLE=ttyS1,9600")
	cfg, err := os.ReadFile(filepath.Join(up, "var/log/dib-boot/grub/grub.cfg"))
	if err != nil {
		t.Fatalf("no grub.cfg: %v\n%s", err, out)
	}
	for _, want := range []string{
		"set timeout=7\n",
		"serial --speed=9600 --unit=1 --word=8 --parity=no --stop=1\n",
		"terminal_output serial console\n",
		"search --no-floppy --label dibroot --set=root\n",
		"linux /boot/vmlinuz-9.9.9-dib root=LABEL=dibroot ro console=tty0 console=ttyS1,9600 no_timer_check nofb nomodeset gfxpayload=text\n",
		"initrd /boot/initrd.img-9.9.9-dib\n",
	} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, cfg)
		}
	}
	// Newest kernel first.
	if a, b := strings.Index(string(cfg), "9.10.1-dib"), strings.Index(string(cfg), "9.9.9-dib"); a < 0 || a > b {
		t.Errorf("kernels not newest first:\n%s", cfg)
	}
	def, err := os.ReadFile(filepath.Join(up, "etc/default/grub.d/50-dib-bootloader.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"GRUB_TIMEOUT=7\n", `GRUB_TERMINAL="serial console"`, "root=LABEL=dibroot",
		`GRUB_CMDLINE_LINUX_DEFAULT="console=tty0 console=ttyS1,9600 no_timer_check nofb nomodeset gfxpayload=text"`} {
		if !strings.Contains(string(def), want) {
			t.Errorf("50-dib-bootloader.cfg lacks %q:\n%s", want, def)
		}
	}
}
