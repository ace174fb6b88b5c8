package elements

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
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
echo "initrd $(wc -l < /var/log/real-update-initramfs)" > /boot/initrd.img-9.9.9-dib
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
mkdir /var/cache/dib-initramfs   # the runtime's initramfs cache, empty
$h/post-install.d/99-update-initramfs
dpkg-divert --list /usr/sbin/update-initramfs > /var/log/diversions
cp /var/log/real-update-initramfs /var/log/real-update-initramfs.first
# The same inputs again: the initramfs comes from the cache.
rm /boot/initrd.img-9.9.9-dib
$h/pre-install.d/05-defer-update-initramfs
$h/post-install.d/99-update-initramfs > /var/log/initramfs-2
cp /boot/initrd.img-9.9.9-dib /var/log/initrd-2
# A module option changes the initramfs's inputs: built again.
mkdir -p /etc/modprobe.d && echo "options dib-test x=1" > /etc/modprobe.d/dib-test.conf
rm /boot/initrd.img-9.9.9-dib
$h/pre-install.d/05-defer-update-initramfs
$h/post-install.d/99-update-initramfs
cp /boot/initrd.img-9.9.9-dib /var/log/initrd-3
cp /var/log/real-update-initramfs /var/log/real-update-initramfs.third
# Every entry damaged (another build's write, a disk error): its copy does
# not match its sha256, so built again, and no partial file is left.
for f in /var/cache/dib-initramfs/*; do case $f in *.sha256) ;; *) echo damaged >> "$f" ;; esac; done
rm /boot/initrd.img-9.9.9-dib
$h/pre-install.d/05-defer-update-initramfs
$h/post-install.d/99-update-initramfs
cp /boot/initrd.img-9.9.9-dib /var/log/initrd-4
ls /boot > /var/log/boot-4

# visudo comes with sudo, which the element installs; the host may lack it.
[ -x /usr/sbin/visudo ] || printf '#!/bin/sh\nexit 0\n' > /usr/sbin/visudo
chmod 755 /usr/sbin/visudo
$h/install.d/50-devuser
# Without a shell or sudo rule: useradd's defaults and no sudoers file.
DIB_DEV_USER_USERNAME=plainuser DIB_DEV_USER_SHELL= DIB_DEV_USER_PWDLESS_SUDO= DIB_DEV_USER_GROUPS= DIB_DEV_USER_PASSWORD= $h/install.d/50-devuser
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
# finalise.d's apt-get clean, skipped with DIB_DISABLE_APT_CLEANUP=1.
DIB_DISABLE_APT_CLEANUP=1 $h/finalise.d/99-clean-up-cache
echo cleanup-disabled-ran >> /var/log/fake-apt-get
$h/finalise.d/99-clean-up-cache
`
	writeFile(t, filepath.Join(hooks, "bin", "apt-get"), "#!/bin/sh\necho \"$*\" >> /var/log/fake-apt-get\n", 0o755)
	up, out := overlayChroot(t, hooks, steps,
		"DIB_INIT_SYSTEM=systemd", "DIB_DEFER_INITRAMFS=1",
		"DIB_DEV_USER_USERNAME=dibtester", "DIB_DEV_USER_PASSWORD=s3cret", "DIB_DEV_USER_PWDLESS_SUDO=yes",
		"DIB_DEV_USER_SHELL=/bin/sh", "DIB_DEV_USER_GROUPS=adm,users")
	read := func(p string) string { return readUp(t, up, out, p) }

	t.Run("initramfs built once", func(t *testing.T) {
		if got := read("var/log/real-update-initramfs.first"); got != "-c -k 9.9.9-dib\n" {
			t.Errorf("real update-initramfs calls = %q, want one -c", got)
		}
	})
	t.Run("initramfs cache", func(t *testing.T) {
		// Second build: from the cache; third (a modprobe.d file
		// added): built again.
		if got := read("var/log/real-update-initramfs.third"); got != "-c -k 9.9.9-dib\n-c -k 9.9.9-dib\n" {
			t.Errorf("real update-initramfs calls = %q, want two (the second build's came from the cache)", got)
		}
		if got := read("var/log/initrd-2"); got != "initrd 1\n" {
			t.Errorf("the initramfs from the cache = %q, want the first build's", got)
		}
		if got := read("var/log/initramfs-2"); !strings.Contains(got, "from the cache") {
			t.Errorf("the second build did not say it used the cache: %q", got)
		}
		if got := read("var/log/initrd-3"); got != "initrd 2\n" {
			t.Errorf("the initramfs after a module option changed = %q, want a new one", got)
		}
		if got := read("var/log/initrd-4"); got != "initrd 3\n" {
			t.Errorf("the initramfs after the cache's entries were damaged = %q, want a new one", got)
		}
		if got := read("var/log/boot-4"); got != "initrd.img-9.9.9-dib\nvmlinuz-9.9.9-dib\n" {
			t.Errorf("/boot after a damaged cache entry: %q, want the kernel and its initramfs", got)
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
		if group := read("etc/group"); !regexp.MustCompile(`(?m)^adm:x:\d+:(.*,)?dibtester$`).MatchString(group) || !regexp.MustCompile(`(?m)^users:x:\d+:(.*,)?dibtester$`).MatchString(group) {
			t.Errorf("user not in adm and users:\n%s", group)
		}
		// As DIB: mkdir -p and cp (the hook tree's mode), then chown -R.
		if got := read("home/dibtester/.ssh/authorized_keys"); got != "ssh-ed25519 AAAAtest user@host\n" {
			t.Errorf("authorized_keys = %q", got)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(up, "home/dibtester/.ssh/authorized_keys"), &st); err != nil || st.Mode&0o777 != 0o644 || st.Uid == 0 {
			t.Errorf("authorized_keys mode %o uid %d: %v", st.Mode&0o777, st.Uid, err)
		}
		// No DIB_DEV_USER_PWDLESS_SUDO: no sudoers file at all; no shell: useradd's default.
		if _, err := os.Lstat(filepath.Join(up, "etc/sudoers.d/plainuser")); !os.IsNotExist(err) {
			t.Errorf("sudoers file written without DIB_DEV_USER_PWDLESS_SUDO: %v", err)
		}
		if !regexp.MustCompile(`(?m)^plainuser:x:\d+:\d+::/home/plainuser:/bin/sh$`).MatchString(passwd) {
			t.Errorf("plainuser's passwd line:\n%s", passwd)
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
		if got := read("var/log/fake-apt-get"); got != "-q update\ncleanup-disabled-ran\nclean\n" {
			t.Errorf("apt-get calls = %q, want one update, then clean only without DIB_DISABLE_APT_CLEANUP", got)
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
	// The host overlay has GRUB already: record what would be installed.
	writeFile(t, filepath.Join(hooks, "bin", "install-packages"), "#!/bin/sh\necho \"$*\" > /etc/dib-test-install-packages\n", 0o755)
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
		"DIB_GRUB_TIMEOUT=7", "DIB_BOOTLOADER_SERIAL_CONSOLE=ttyS1,9600", "DIB_BLOCK_DEVICE=efi")
	// DIB's choice of GRUB packages for an EFI disk, through the pkg-map.
	if args, _ := os.ReadFile(filepath.Join(up, "etc/dib-test-install-packages")); string(args) != "-m bootloader grub-efi grub-efi-amd64\n" {
		t.Errorf("install-packages called with %q, want DIB's grub-efi grub-efi-amd64 for DIB_BLOCK_DEVICE=efi", args)
	}
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

// TestBootloaderPackages: the GRUB packages 50-bootloader asks for, by
// architecture and DIB_BLOCK_DEVICE, are DIB's (bootloader/finalise.d).
func TestBootloaderPackages(t *testing.T) {
	t.Parallel()
	hooks := hooksTree(t, "bootloader", "pkg-map", "dpkg")
	bin := t.TempDir()
	// install-packages records its arguments and stops the script there.
	writeFile(t, filepath.Join(bin, "install-packages"), "#!/bin/sh\necho \"$*\"\nexit 3\n", 0o755)
	for _, c := range []struct{ arch, dev, want string }{
		{"amd64", "efi", "-m bootloader grub-efi grub-efi-amd64"},
		{"arm64", "efi", "-m bootloader grub-efi grub-efi-arm64"},
		{"amd64", "mbr", "-m bootloader grub-pc"},
		{"amd64", "gpt", "-m bootloader grub-pc"},
		{"amd64", "", "-m bootloader grub-pc grub-efi grub-efi-amd64"},
		{"ppc64el", "mbr", "-m bootloader grub-ppc64"},
	} {
		cmd := exec.Command("bash", filepath.Join(hooks, "finalise.d", "50-bootloader"))
		cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "DISTRO_NAME=debian", "ARCH=" + c.arch, "DIB_BLOCK_DEVICE=" + c.dev}
		out, err := cmd.Output()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || strings.TrimSpace(string(out)) != c.want {
			t.Errorf("ARCH=%s DIB_BLOCK_DEVICE=%q: install-packages %q (%v), want %q", c.arch, c.dev, out, err, c.want)
		}
	}
	cmd := exec.Command("bash", filepath.Join(hooks, "finalise.d", "50-bootloader"))
	cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "DISTRO_NAME=debian", "ARCH=amd64", "DIB_SKIP_GRUB_PACKAGE_INSTALL=True"}
	if out, _ := cmd.Output(); strings.Contains(string(out), "-m bootloader") {
		t.Errorf("DIB_SKIP_GRUB_PACKAGE_INSTALL=True still installs: %s", out)
	}
}

// readUp reads p from an overlay's upper directory; a missing file is an
// error that shows the chroot's output.
func readUp(t *testing.T, up, out, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(up, p))
	if err != nil {
		t.Errorf("%s: %v\n%s", p, err, out)
	}
	return string(b)
}
