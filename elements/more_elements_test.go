package elements

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The host-side hooks that replace apt's configuration in the tree before
// packages are installed: unset variable → nothing and exit 0; a file →
// copied into $TMP_MOUNT_PATH; a bad path → an error naming it.
func TestAptConfigElements(t *testing.T) {
	hooks := hooksTree(t, "apt-sources", "apt-conf", "apt-preferences")
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "sources.list"), "deb http://mirror.example/debian bookworm main\n", 0o644)
	writeFile(t, filepath.Join(src, "apt.conf"), "Acquire::Retries \"5\";\n", 0o644)
	writeFile(t, filepath.Join(src, "manifest.json"),
		`{"packages": [{"package": "bash", "version": "5.2.15-2+b2", "arch": "amd64"}, {"package": "less", "version": "590-2"}]}`, 0o644)
	writeFile(t, filepath.Join(src, "empty"), "", 0o644)
	cases := []struct {
		hook, variable, value string
		code                  int
		file, want            string
	}{
		{"99-override-default-apt-sources", "DIB_APT_SOURCES", "", 0, "etc/apt/sources.list", ""},
		{"99-override-default-apt-sources", "DIB_APT_SOURCES", "sources.list", 0, "etc/apt/sources.list", "deb http://mirror.example/debian bookworm main\n"},
		{"99-override-default-apt-sources", "DIB_APT_SOURCES", "empty", 1, "etc/apt/sources.list", ""},
		{"99-override-default-apt-conf", "DIB_APT_CONF", "", 0, "etc/apt/apt.conf", ""},
		{"99-override-default-apt-conf", "DIB_APT_CONF", "apt.conf", 0, "etc/apt/apt.conf", "Acquire::Retries \"5\";\n"},
		{"99-override-default-apt-conf", "DIB_APT_CONF", "missing", 1, "etc/apt/apt.conf", ""},
		{"99-set-apt-package-pins", "DIB_DPKG_MANIFEST", "", 0, "etc/apt/preferences", ""},
		{"99-set-apt-package-pins", "DIB_DPKG_MANIFEST", "manifest.json", 0, "etc/apt/preferences",
			"Package: bash\nPin: version 5.2.15-2+b2\nPin-Priority: 1001\n\nPackage: less\nPin: version 590-2\nPin-Priority: 1001\n\n"},
		{"99-set-apt-package-pins", "DIB_DPKG_MANIFEST", "empty", 1, "etc/apt/preferences", ""},
	}
	for _, c := range cases {
		t.Run(c.hook+"/"+c.value, func(t *testing.T) {
			root := t.TempDir()
			env := map[string]string{"TMP_MOUNT_PATH": root}
			if c.value != "" {
				env[c.variable] = filepath.Join(src, c.value)
			}
			r := runScript(t, filepath.Join(hooks, "extra-data.d", c.hook), env)
			if r.code != c.code {
				t.Fatalf("exit %d, want %d:\n%s", r.code, c.code, r.out)
			}
			if c.code != 0 && !strings.Contains(r.out, c.variable) {
				t.Errorf("error does not name %s:\n%s", c.variable, r.out)
			}
			got, err := os.ReadFile(filepath.Join(root, c.file))
			if c.want == "" {
				if err == nil {
					t.Errorf("%s written: %q", c.file, got)
				}
				return
			}
			if string(got) != c.want {
				t.Errorf("%s = %q, want %q", c.file, got, c.want)
			}
		})
	}
}

func TestElementManifest(t *testing.T) {
	hooks := hooksTree(t, "element-manifest")
	for _, c := range []struct{ path, want string }{
		{"", "etc/dib-manifests/dib-element-manifest"},
		{"/root/elements.txt", "root/elements.txt"},
	} {
		root := t.TempDir()
		env := map[string]string{"TMP_MOUNT_PATH": root, "DIB_MANIFEST_IMAGE_DIR": "/etc/dib-manifests",
			"IMAGE_ELEMENT": "debian-minimal vm  element-manifest"}
		if c.path != "" {
			env["DIB_ELEMENT_MANIFEST_PATH"] = c.path
		}
		r := runScript(t, filepath.Join(hooks, "extra-data.d", "75-inject-element-manifest"), env)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.out)
		}
		if got := readFile(t, filepath.Join(root, c.want)); got != "debian-minimal\nvm\nelement-manifest\n" {
			t.Errorf("%s = %q", c.want, got)
		}
	}
}

// pip-cache binds $DIB_IMAGE_CACHE/pip at /tmp/pip in the tree: what pip
// writes there during the build lands in the host cache.
func TestPipCacheBind(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
			t.Fatal("needs root (DIB_REQUIRE_INTEGRATION=1)")
		}
		t.Skip("needs root for a mount namespace")
	}
	requireTool(t, "unshare")
	hooks := hooksTree(t, "pip-cache")
	root, cache := t.TempDir(), t.TempDir()
	script := filepath.Join(hooks, "root.d", "11-pip-cache")
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "bash", "-c",
		`set -e; "$0"; echo wheel > "$TMP_MOUNT_PATH/tmp/pip/pkg.whl"; . "$1"; echo "$PIP_DOWNLOAD_CACHE"`,
		script, filepath.Join(hooks, "environment.d", "10-pip-cache"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "TMP_MOUNT_PATH=" + root, "DIB_IMAGE_CACHE=" + cache}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.HasSuffix(string(out), "/tmp/pip\n") {
		t.Errorf("PIP_DOWNLOAD_CACHE: %q", out)
	}
	if got := readFile(t, filepath.Join(cache, "pip", "pkg.whl")); got != "wheel\n" {
		t.Errorf("cache got %q", got)
	}
	if _, err := os.Stat(filepath.Join(root, "tmp", "pip", "pkg.whl")); err == nil {
		t.Error("the file reached the tree itself: the bind did not happen")
	}
}

// The in-image hooks of the small configuration elements, run in a chroot
// of a real Debian system.
func TestConfigElementsInChroot(t *testing.T) {
	t.Parallel()
	hooks := hooksTree(t, "journal-to-console", "selinux-permissive", "disable-selinux",
		"cloud-init-disable-resizefs", "cloud-init-nocloud", "cloud-init-growpart", "sysctl")
	steps := `
h=/tmp/in_target.d
$h/post-install.d/30-journal-to-console

$h/pre-install.d/11-selinux-permissive
cp /etc/selinux/config /etc/selinux-permissive.conf
$h/post-install.d/15-disable-selinux

mkdir -p /etc/cloud/cloud.cfg.d
printf 'cloud_init_modules:\n - migrator\n - growpart\n - resizefs\n - set_hostname\n' > /etc/cloud/cloud.cfg
$h/post-install.d/50-cloud-init-disable-resizefs
$h/post-install.d/51-cloud-init-disable-growpart
$h/install.d/05-inject-local-source-data
echo keep > /var/lib/cloud/seed/nocloud/user-data
$h/install.d/05-inject-local-source-data
if DIB_CLOUD_INIT_GROWPART_DEVICES= $h/post-install.d/55-growpart 2>/var/log/growpart-err; then exit 9; fi
DIB_CLOUD_INIT_GROWPART_DEVICES='["/", "/dev/vda3"]' $h/post-install.d/55-growpart

sysctl-set-value net.ipv4.ip_forward 1
sysctl-write-value net.ipv4.ip_forward 1
if sysctl-write-value net.ipv4.ip_forward 0 2>/var/log/sysctl-conflict; then exit 8; fi
if sysctl-set-value no.such.key 1 2>/var/log/sysctl-unknown; then exit 7; fi
`
	up, out := overlayChroot(t, hooks, steps)
	read := func(p string) string { return readUp(t, up, out, p) }
	want := map[string]string{
		"etc/systemd/journald.conf.d/log-to-console.conf": "[Journal]\nForwardToConsole=yes\n",
		"etc/selinux-permissive.conf":                     "SELINUX=permissive\nSELINUXTYPE=targeted\n",
		"etc/selinux/config":                              "SELINUX=disabled\nSELINUXTYPE=targeted\n",
		"etc/cloud/cloud.cfg":                             "cloud_init_modules:\n - migrator\n - set_hostname\n",
		"var/lib/cloud/seed/nocloud/user-data":            "keep\n",
		"var/lib/cloud/seed/nocloud/meta-data":            "",
		"etc/cloud/cloud.cfg.d/55-growpart.cfg":           "growpart:\n    mode: auto\n    devices: [\"/\", \"/dev/vda3\"]\n    ignore_growroot_disabled: false\n",
		"etc/sysctl.d/net.ipv4.ip_forward.conf":           "# Written by dib's sysctl element.\nnet.ipv4.ip_forward = 1\n",
	}
	for p, w := range want {
		if got := read(p); got != w {
			t.Errorf("%s = %q, want %q", p, got, w)
		}
	}
	for p, w := range map[string]string{
		"var/log/growpart-err":    "DIB_CLOUD_INIT_GROWPART_DEVICES",
		"var/log/sysctl-conflict": "already sets net.ipv4.ip_forward differently",
		"var/log/sysctl-unknown":  "unknown kernel parameter no.such.key",
	} {
		if got := read(p); !strings.Contains(got, w) {
			t.Errorf("%s = %q, want it to mention %q", p, got, w)
		}
	}
}

// debian's cloud opinions, dynamic-login, modprobe-blacklist and dkms, in a
// chroot of a real Debian system; apt-get, dpkg --purge and dkms are
// stand-ins that log their calls.
func TestDebianFamilyElementsInChroot(t *testing.T) {
	t.Parallel()
	hooks := hooksTree(t, "debian", "dynamic-login", "modprobe-blacklist", "dkms")
	writeFile(t, filepath.Join(hooks, "bin", "apt-get"), "#!/bin/sh\necho \"apt-get $*\" >> /var/log/fake-pkg\n", 0o755)
	writeFile(t, filepath.Join(hooks, "bin", "dpkg"), "#!/bin/sh\necho \"dpkg $*\" >> /var/log/fake-pkg\n", 0o755)
	writeFile(t, filepath.Join(hooks, "bin", "systemctl"), "#!/bin/sh\necho \"systemctl $*\" >> /var/log/fake-systemctl\n", 0o755)
	writeFile(t, filepath.Join(hooks, "bin", "dkms"), `#!/bin/sh
echo "dkms $*" >> /var/log/fake-dkms
[ "$1" = status ] && echo "e1000e/3.8.4, 6.1.0-9-amd64, x86_64: added"
[ "$1" = build ] && [ -n "${ARCH:-}" ] && { echo "ARCH leaked: $ARCH" >&2; exit 3; }
exit 0
`, 0o755)
	steps := `
h=/tmp/in_target.d
DIB_RELEASE=bookworm $h/install.d/10-cloud-opinions
cp /var/log/fake-pkg /var/log/pkg-bookworm; : > /var/log/fake-pkg
DIB_RELEASE=wheezy $h/install.d/10-cloud-opinions
id debian > /var/log/debian-user

DIB_INIT_SYSTEM=systemd $h/install.d/70-enable-dynamic-login-services
echo 'root=/dev/vda1 rootpwd="JDYkc2FsdCRoYXNo" sshkey="ssh-ed25519 AAAAdyn test@x" quiet' > /tmp/cmdline
mount --bind /tmp/cmdline /proc/cmdline
$h/static/usr/local/bin/dynamic-login
getent shadow root | cut -d: -f2 > /var/log/root-hash

if $h/install.d/80-modprobe-blacklist 2>/var/log/blacklist-err; then exit 9; fi
DIB_MODPROBE_BLACKLIST="floppy  pcspkr" $h/install.d/80-modprobe-blacklist

mkdir -p /usr/src/linux-headers-6.1.0-9-amd64 /usr/src/linux-headers-6.1.0-9-common
ARCH=amd64 $h/post-install.d/97-dkms
`
	up, out := overlayChroot(t, hooks, steps)
	read := func(p string) string { return readUp(t, up, out, p) }
	if got, want := read("var/log/pkg-bookworm"), "dpkg --purge --force-remove-essential sysvinit\napt-get install -y systemd-sysv\napt-get install -y netplan.io\n"; got != want {
		t.Errorf("bookworm package calls %q, want %q", got, want)
	}
	if got := read("var/log/fake-pkg"); got != "" {
		t.Errorf("wheezy (sysvinit) package calls %q, want none", got)
	}
	if got := read("etc/apt/preferences.d/sysvinit"); got != "Package: sysvinit\nPin: origin \"\"\nPin-Priority: -1\n" {
		t.Errorf("sysvinit pin %q", got)
	}
	if got := read("etc/sudoers.d/debian-cloud-init"); got != "debian ALL=(ALL) NOPASSWD:ALL\n" {
		t.Errorf("sudoers %q", got)
	}
	if got := read("var/log/fake-systemctl"); got != "systemctl enable dynamic-login.service\n" {
		t.Errorf("systemctl %q", got)
	}
	if got := read("var/log/root-hash"); got != "$6$salt$hash\n" {
		t.Errorf("root hash %q (base64 of the kernel argument, decoded)", got)
	}
	if got := read("root/.ssh/authorized_keys"); got != "ssh-ed25519 AAAAdyn test@x\n" {
		t.Errorf("authorized_keys %q", got)
	}
	if got := read("var/log/blacklist-err"); !strings.Contains(got, "DIB_MODPROBE_BLACKLIST") {
		t.Errorf("missing variable error %q", got)
	}
	if got := read("etc/modprobe.d/blacklist.conf"); !strings.HasSuffix(got, "blacklist floppy\nblacklist pcspkr\n") {
		t.Errorf("blacklist.conf %q", got)
	}
	if got, want := read("var/log/fake-dkms"), "dkms status\ndkms build e1000e/3.8.4 -k 6.1.0-9-amd64\ndkms install e1000e/3.8.4 -k 6.1.0-9-amd64\ndkms status\n"; got != want {
		t.Errorf("dkms calls %q, want %q", got, want)
	}
}

// debian-systemd leaves its setting for the debootstrap hook, which reads
// it and removes the file: nothing of it reaches the image.
func TestDebianSystemdExtraSettings(t *testing.T) {
	hooks := hooksTree(t, "debian-systemd", "debootstrap")
	root := t.TempDir()
	for _, f := range []string{"etc/debian_version", "usr/bin/dpkg", "var/lib/dpkg/status"} {
		writeFile(t, filepath.Join(root, f), "x\n", 0o644)
	}
	env := map[string]string{"TARGET_ROOT": root, "TMP_MOUNT_PATH": root}
	if r := runScript(t, filepath.Join(hooks, "root.d", "05-debian-systemd"), env); r.code != 0 {
		t.Fatalf("05-debian-systemd: %d %s", r.code, r.out)
	}
	if got := readFile(t, filepath.Join(root, ".extra_settings")); got != "DIB_DEBIAN_ALT_INIT_PACKAGE=systemd-sysv\n" {
		t.Errorf(".extra_settings %q", got)
	}
	if r := runScript(t, filepath.Join(hooks, "root.d", "08-debootstrap"), env); r.code != 0 {
		t.Fatalf("08-debootstrap: %d %s", r.code, r.out)
	}
	if _, err := os.Stat(filepath.Join(root, ".extra_settings")); err == nil {
		t.Error(".extra_settings left in the tree")
	}
}

// fakeBin is a directory of stand-in commands that log "NAME ARGS" to
// bin/calls; it goes first on PATH.
func fakeBin(t *testing.T, names ...string) (dir, calls string) {
	t.Helper()
	dir = t.TempDir()
	calls = filepath.Join(dir, "calls")
	for _, n := range names {
		writeFile(t, filepath.Join(dir, n), "#!/bin/sh\necho \""+n+" $*\" >> '"+calls+"'\n", 0o755)
	}
	return dir, calls
}

func TestServiceEnablingElements(t *testing.T) {
	hooks := hooksTree(t, "autoupdates", "fail2ban", "ibft-interfaces")
	cases := []struct {
		hook string
		env  map[string]string
		code int
		want string
	}{
		{"post-install.d/82-enable-autoupdate", map[string]string{"DIB_INIT_SYSTEM": "systemd", "DISTRO_NAME": "debian"}, 0, "systemctl enable unattended-upgrades.service\n"},
		{"post-install.d/82-enable-autoupdate", map[string]string{"DIB_INIT_SYSTEM": "systemd", "DISTRO_NAME": "rocky"}, 0, "systemctl enable dnf-automatic.timer\n"},
		{"post-install.d/82-enable-autoupdate", map[string]string{"DIB_INIT_SYSTEM": "systemd", "DISTRO_NAME": "gentoo"}, 1, ""},
		{"post-install.d/80-enable-fail2ban-service", map[string]string{"DIB_INIT_SYSTEM": "systemd"}, 0, "systemctl enable fail2ban.service\n"},
		{"post-install.d/80-enable-fail2ban-service", map[string]string{"DIB_INIT_SYSTEM": "openrc"}, 0, "rc-update add fail2ban default\n"},
		{"post-install.d/80-enable-fail2ban-service", map[string]string{"DIB_INIT_SYSTEM": "runit"}, 1, ""},
		{"post-install.d/70-init-ibft-interfaces", map[string]string{"DIB_INIT_SYSTEM": "systemd"}, 0, "systemctl enable init-ibft-interfaces.service\n"},
		{"post-install.d/70-init-ibft-interfaces", map[string]string{"DIB_INIT_SYSTEM": "sysv"}, 0, "update-rc.d init-ibft-interfaces.init defaults\n"},
		{"post-install.d/70-init-ibft-interfaces", map[string]string{"DIB_INIT_SYSTEM": "upstart"}, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.hook+"/"+c.env["DIB_INIT_SYSTEM"]+"/"+c.env["DISTRO_NAME"], func(t *testing.T) {
			bin, calls := fakeBin(t, "systemctl", "rc-update", "update-rc.d")
			c.env["PATH"] = bin + ":" + os.Getenv("PATH")
			r := runScript(t, filepath.Join(hooks, c.hook), c.env)
			if r.code != c.code {
				t.Fatalf("exit %d, want %d: %s", r.code, c.code, r.out)
			}
			got, _ := os.ReadFile(calls)
			if string(got) != c.want {
				t.Errorf("calls %q, want %q", got, c.want)
			}
		})
	}
}

func TestRootConfigElements(t *testing.T) {
	hooks := hooksTree(t, "autoupdates", "fail2ban")
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "unattended"), "Unattended-Upgrade::Automatic-Reboot \"false\";\n", 0o644)
	writeFile(t, filepath.Join(src, "jail"), "[sshd]\nenabled = true\n", 0o644)
	for _, c := range []struct {
		hook string
		env  map[string]string
		code int
		file string
	}{
		{"root.d/61-create-update-config", map[string]string{"DIB_DEB_UPDATES_CONF": "unattended"}, 0, "etc/apt/apt.conf.d/50unattended-upgrades"},
		{"root.d/61-create-update-config", map[string]string{"DIB_YUM_UPDATES_CONF": "unattended"}, 0, "etc/dnf/automatic.conf"},
		{"root.d/61-create-update-config", map[string]string{"DIB_DEB_UPDATES_CONF": "unattended", "DIB_YUM_UPDATES_CONF": "unattended"}, 1, ""},
		{"root.d/61-create-update-config", map[string]string{}, 0, ""},
		{"root.d/60-copy-fail2ban-config", map[string]string{"DIB_FAIL2BAN_CONF": "jail"}, 0, "etc/fail2ban/jail.local"},
		{"root.d/60-copy-fail2ban-config", map[string]string{"DIB_FAIL2BAN_CONF": "nope"}, 1, ""},
	} {
		root := t.TempDir()
		env := map[string]string{"TARGET_ROOT": root}
		var from string
		for k, v := range c.env {
			env[k] = filepath.Join(src, v)
			from = env[k]
		}
		r := runScript(t, filepath.Join(hooks, c.hook), env)
		if r.code != c.code {
			t.Errorf("%s %v: exit %d, want %d: %s", c.hook, c.env, r.code, c.code, r.out)
			continue
		}
		if c.file != "" && readFile(t, filepath.Join(root, c.file)) != readFile(t, from) {
			t.Errorf("%s: %s not copied", c.hook, c.file)
		}
	}
}

func TestIscsiBoot(t *testing.T) {
	hooks := hooksTree(t, "iscsi-boot", "ibft-interfaces")
	check := filepath.Join(hooks, "extra-data.d", "50-check-dracut-regenerate")
	for _, c := range []struct {
		distro, elements string
		code             int
	}{
		{"centos", "centos-minimal vm iscsi-boot", 1},
		{"centos", "centos-minimal vm iscsi-boot dracut-regenerate", 0},
		{"debian", "debian-minimal vm iscsi-boot", 0},
	} {
		r := runScript(t, check, map[string]string{"DISTRO_NAME": c.distro, "IMAGE_ELEMENT": c.elements})
		if r.code != c.code {
			t.Errorf("%s %q: exit %d, want %d: %s", c.distro, c.elements, r.code, c.code, r.out)
		}
	}
	// environment.d adds dracut's modules on CentOS only.
	for distro, want := range map[string]string{"centos": "\n- name: network\n- name: iscsi\n", "debian": ""} {
		out, err := exec.Command("bash", "-c", `set -eu; DISTRO_NAME=$0; . "$1"; printf %s "${DIB_DRACUT_ENABLED_MODULES:-}"`,
			distro, filepath.Join(hooks, "environment.d", "open-iscsi-config")).Output()
		if err != nil || string(out) != want {
			t.Errorf("%s: DIB_DRACUT_ENABLED_MODULES %q (%v), want %q", distro, out, err, want)
		}
	}
	// ibft's boot script: no table → nothing; a table → iscsistart -N.
	for table, want := range map[bool]string{false: "iscsistart -v\niscsistart -f\n", true: "iscsistart -v\niscsistart -f\niscsistart -N\nudevadm settle\n"} {
		bin, calls := fakeBin(t, "udevadm")
		status := "1"
		if table {
			status = "0"
		}
		writeFile(t, filepath.Join(bin, "iscsistart"), "#!/bin/sh\necho \"iscsistart $*\" >> '"+calls+"'\n[ \"$1\" = -f ] && exit "+status+"\nexit 0\n", 0o755)
		r := runScript(t, filepath.Join(hooks, "static", "usr", "local", "sbin", "init-ibft-interfaces.sh"), map[string]string{"PATH": bin + ":" + os.Getenv("PATH")})
		if r.code != 0 || readFile(t, calls) != want {
			t.Errorf("table %v: exit %d, calls %q, want %q\n%s", table, r.code, readFile(t, calls), want, r.out)
		}
	}
}

// In the image: Debian's initramfs-tools flag, CentOS's kernel argument.
func TestIscsiBootInChroot(t *testing.T) {
	t.Parallel()
	hooks := hooksTree(t, "iscsi-boot")
	writeFile(t, filepath.Join(hooks, "bin", "update-initramfs"), "#!/bin/sh\necho \"update-initramfs $*\" >> /var/log/fake-calls\n", 0o755)
	writeFile(t, filepath.Join(hooks, "bin", "grub2-mkconfig"), "#!/bin/sh\necho \"grub2-mkconfig $*\" >> /var/log/fake-calls\n", 0o755)
	steps := `
h=/tmp/in_target.d
DISTRO_NAME=debian $h/post-install.d/open-iscsi-config
mkdir -p /etc/default
echo 'GRUB_CMDLINE_LINUX_DEFAULT="console=ttyS0 quiet"' > /etc/default/grub
DISTRO_NAME=centos $h/finalise.d/51-open-iscsi-config
`
	up, out := overlayChroot(t, hooks, steps)
	for p, want := range map[string]string{
		"etc/iscsi/iscsi.initramfs": "ISCSI_AUTO=true\n",
		"etc/default/grub":          "GRUB_CMDLINE_LINUX_DEFAULT=\"console=ttyS0 quiet rd.iscsi.firmware=1\"\n",
		"var/log/fake-calls":        "update-initramfs -u\ngrub2-mkconfig -o /boot/grub2/grub.cfg\n",
	} {
		b, err := os.ReadFile(filepath.Join(up, p))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q (%v), want %q\n%s", p, b, err, want, out)
		}
	}
}

// cleanup-kernel-initrd keeps the kernel the image boots (the newest, as
// $_LIB's select_boot_kernel_initrd picks it) and debug kernels.
func TestCleanupKernelInitrd(t *testing.T) {
	hooks := hooksTree(t, "cleanup-kernel-initrd")
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "etc", "debian_version"), "12.8\n", 0o644)
	var files []string
	for _, v := range []string{"6.1.0-9-amd64", "6.1.0-28-amd64", "6.1.0-9-debug"} {
		files = append(files, "vmlinuz-"+v, "initrd.img-"+v, "System.map-"+v, "config-"+v)
	}
	for _, f := range files {
		writeFile(t, filepath.Join(root, "boot", f), f+"\n", 0o644)
	}
	lib, err := filepath.Abs(filepath.Join("..", "runtime", "lib", "files"))
	if err != nil {
		t.Fatal(err)
	}
	r := runScript(t, filepath.Join(hooks, "cleanup.d", "99-cleanup-kernel-initrd"), map[string]string{
		"TARGET_ROOT": root, "_LIB": lib, "DISTRO_NAME": "debian", "DIB_RELEASE": "bookworm", "TMP_MOUNT_PATH": root,
	})
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.out)
	}
	ents, _ := os.ReadDir(filepath.Join(root, "boot"))
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	want := []string{"System.map-6.1.0-28-amd64", "System.map-6.1.0-9-debug", "config-6.1.0-28-amd64", "config-6.1.0-9-debug",
		"initrd.img-6.1.0-28-amd64", "initrd.img-6.1.0-9-debug", "vmlinuz-6.1.0-28-amd64", "vmlinuz-6.1.0-9-debug"}
	if strings.Join(left, " ") != strings.Join(want, " ") {
		t.Errorf("/boot after cleanup: %q, want %q\n%s", left, want, r.out)
	}
}

// simple-init's repo install type, offline: a stand-in glean checkout at
// /tmp/glean.git and a stand-in pbr wheel on a local find-links directory
// (pip honours PIP_NO_INDEX and PIP_FIND_LINKS), both built in the chroot.
// Then glean-install (the stand-in logs its arguments) and the interface
// clean-up.
func TestSimpleInitInChroot(t *testing.T) {
	t.Parallel()
	hooks := hooksTree(t, "simple-init")
	writeFile(t, filepath.Join(hooks, "standin", "glean", "setup.py"),
		"from setuptools import setup\nsetup(name='glean', version='1.0', scripts=['glean', 'glean.sh', 'glean-install'])\n", 0o644)
	for _, s := range []string{"glean", "glean.sh"} {
		writeFile(t, filepath.Join(hooks, "standin", "glean", s), "#!/bin/sh\nexit 0\n", 0o755)
	}
	writeFile(t, filepath.Join(hooks, "standin", "glean", "glean-install"), "#!/bin/sh\necho \"glean-install $*\" >> /var/log/glean-install\n", 0o755)
	writeFile(t, filepath.Join(hooks, "standin", "pbr", "setup.py"), "from setuptools import setup\nsetup(name='pbr', version='6.0.0', py_modules=[])\n", 0o644)
	steps := `
h=/tmp/in_target.d
cp -r $h/standin/glean /tmp/glean.git
cp -r $h/standin/pbr /tmp/pbr-src
python3 -m pip wheel -q --no-deps --no-build-isolation -w /tmp/wheels /tmp/pbr-src
PIP_NO_INDEX=1 PIP_FIND_LINKS=/tmp/wheels $h/install.d/simple-init-repo-install/40-glean
/usr/local/bin/glean --version-check-only
rm -f /var/log/glean-install
DIB_SIMPLE_INIT_NETWORKMANAGER=1 DIB_SIMPLE_INIT_NO_DHCP_FALLBACK=1 $h/install.d/50-simple-init
DIB_SIMPLE_INIT_NETWORKMANAGER=0 $h/install.d/50-simple-init

mkdir -p /etc/network/interfaces.d
echo 'auto eth0' > /etc/network/interfaces.d/eth0
echo 'iface eth0 inet dhcp' > /etc/network/interfaces
DISTRO_NAME=debian DIB_RELEASE=bookworm $h/install.d/60-simple-init-remove-interfaces
`
	up, out := overlayChroot(t, hooks, steps)
	read := func(p string) string { return readUp(t, up, out, p) }
	for _, l := range []string{"usr/local/bin/glean", "usr/local/bin/glean.sh", "usr/local/bin/glean-install"} {
		if target, err := os.Readlink(filepath.Join(up, l)); err != nil || !strings.HasPrefix(target, "/usr/glean/bin/") {
			t.Errorf("%s -> %q (%v)", l, target, err)
		}
	}
	if _, err := os.Stat(filepath.Join(up, "usr/glean/bin/glean-install")); err != nil {
		t.Errorf("glean not installed in /usr/glean: %v\n%s", err, out)
	}
	if got := read("var/log/glean-install"); got != "glean-install --use-nm --no-dhcp-fallback\nglean-install \n" {
		t.Errorf("glean-install calls %q", got)
	}
	if got := read("etc/modules"); !strings.HasSuffix(got, "8021q\n") {
		t.Errorf("/etc/modules %q", got)
	}
	if got := read("etc/network/interfaces"); got != "auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n\n" {
		t.Errorf("/etc/network/interfaces %q", got)
	}
	if _, err := os.Lstat(filepath.Join(up, "etc/network/interfaces.d/eth0")); err == nil {
		t.Error("interfaces.d/eth0 kept")
	}
}

// simple-init's environment: NetworkManager by family, refused where only
// NetworkManager exists; cloud-init's datasources off.
func TestSimpleInitEnvironment(t *testing.T) {
	hooks := hooksTree(t, "simple-init")
	for _, c := range []struct {
		distro, release, set, want string
		fails                      bool
	}{
		{"debian", "bookworm", "", "0", false},
		{"centos", "9-stream", "", "1", false},
		{"rocky", "9", "0", "", true},
		{"fedora", "40", "0", "", true},
		{"centos", "9-stream", "0", "0", false},
	} {
		script := `set -eu
DISTRO_NAME=$0 DIB_RELEASE=$1
[ -n "$2" ] && export DIB_SIMPLE_INIT_NETWORKMANAGER=$2
for f in "$3"/environment.d/*; do . "$f"; done
echo "$DIB_SIMPLE_INIT_NETWORKMANAGER $DIB_CLOUD_INIT_DATASOURCES"`
		out, err := exec.Command("bash", "-c", script, c.distro, c.release, c.set, hooks).CombinedOutput()
		if c.fails {
			if err == nil || !strings.Contains(string(out), "only has NetworkManager") {
				t.Errorf("%s %s NM=0: %q %v, want a refusal", c.distro, c.release, out, err)
			}
			continue
		}
		if err != nil || string(out) != c.want+" None\n" {
			t.Errorf("%s %s: %q %v, want %q", c.distro, c.release, out, err, c.want+" None")
		}
	}
}

// openstack-ci-mirrors on a "CI node" (a mirror file in the chroot's
// /etc/ci) and off one: the mirrors and the apt setting only with the file.
func TestOpenstackCIMirrors(t *testing.T) {
	t.Parallel()
	hooks := hooksTree(t, "openstack-ci-mirrors")
	steps := `
h=/tmp/in_target.d
env_of() { ( set -eu; DISTRO_NAME=$1 ARCH=amd64 DIB_RELEASE=$2; . $h/environment.d/11-dib-distribution-mirror.bash; echo "${DIB_DISTRIBUTION_MIRROR:-none}|${DIB_DEBOOTSTRAP_EXTRA_ARGS:-}|${DIB_EPEL_MIRROR:-}" ); }
mkdir -p /target/etc/apt/apt.conf.d /hooks
TARGET_ROOT=/target TMP_HOOKS_PATH=/hooks $h/root.d/10-apt-disable-gpg
ls /target/etc/apt/apt.conf.d > /var/log/off-node-apt
env_of debian bookworm > /var/log/off-node
mkdir -p /etc/ci
cat > /etc/ci/mirror_info.sh <<'X'
export NODEPOOL_DEBIAN_MIRROR=http://mirror.region.example/debian
export NODEPOOL_UBUNTU_MIRROR=http://mirror.region.example/ubuntu
export NODEPOOL_CENTOS_MIRROR=http://mirror.region.example/centos-stream
export NODEPOOL_EPEL_MIRROR=http://mirror.region.example/epel
X
env_of debian bookworm > /var/log/on-node
env_of ubuntu noble >> /var/log/on-node
env_of centos 9-stream >> /var/log/on-node
TMP_HOOKS_PATH=/hooks $h/extra-data.d/75-copy-mirror-info
TARGET_ROOT=/target TMP_HOOKS_PATH=/hooks $h/root.d/10-apt-disable-gpg
`
	up, out := overlayChroot(t, hooks, steps)
	read := func(p string) string {
		b, _ := os.ReadFile(filepath.Join(up, p))
		return string(b)
	}
	if got := read("var/log/off-node-apt"); got != "" {
		t.Errorf("off a CI node, apt accepts unsigned packages: %q", got)
	}
	if got := read("var/log/off-node"); got != "none||\n" {
		t.Errorf("off a CI node: %q\n%s", got, out)
	}
	want := "http://mirror.region.example/debian| --no-check-gpg|\n" +
		"http://mirror.region.example/ubuntu| --no-check-gpg|\n" +
		"http://mirror.region.example/centos-stream||http://mirror.region.example/epel\n"
	if got := read("var/log/on-node"); got != want {
		t.Errorf("on a CI node: %q, want %q\n%s", got, want, out)
	}
	if got := read("hooks/mirror_info.sh"); !strings.Contains(got, "NODEPOOL_DEBIAN_MIRROR") {
		t.Errorf("mirror file not copied into the hooks: %q", got)
	}
	if got := read("target/etc/apt/apt.conf.d/99unauthenticated"); got != "APT::Get::AllowUnauthenticated \"true\";\nAcquire::AllowInsecureRepositories \"true\";\n" {
		t.Errorf("99unauthenticated %q", got)
	}
}

// pypi writes root's pip.conf for the build from the mirror variables and
// puts the previous configuration back afterwards.
func TestPypiMirrorConfig(t *testing.T) {
	hooks := hooksTree(t, "pypi")
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"DIB_PYPI_MIRROR_URL": "http://user@mirror.example:3141/simple/", "DIB_PYPI_MIRROR_URL_1": "http://second.example/", "DIB_PIP_RETRIES": "0"},
			"[global]\nlog = HOME/pip.log\nindex-url = http://user@mirror.example:3141/simple/\ntrusted-host = mirror.example\nretries = 0\nextra-index-url =\n    http://second.example/\n    https://pypi.python.org/simple\n"},
		{map[string]string{"DIB_OFFLINE": "1"},
			"[global]\nlog = HOME/pip.log\nindex-url = file:///tmp/pypi\ntrusted-host = \n"},
		{map[string]string{"DIB_PYPI_MIRROR_URL": "https://m.example/", "DIB_NO_PYPI_PIP": "1"},
			"[global]\nlog = HOME/pip.log\nindex-url = https://m.example/\ntrusted-host = m.example\n"},
	}
	for i, c := range cases {
		home := t.TempDir()
		writeFile(t, filepath.Join(home, ".pip", "pip.conf"), "[global]\nindex-url = http://old/\n", 0o644)
		c.env["HOME"] = home
		r := runScript(t, filepath.Join(hooks, "pre-install.d", "04-configure-pypi-mirror"), c.env)
		if r.code != 0 {
			t.Fatalf("case %d: exit %d: %s", i, r.code, r.out)
		}
		want := strings.ReplaceAll(c.want, "HOME", home)
		if got := readFile(t, filepath.Join(home, ".pip", "pip.conf")); got != want {
			t.Errorf("case %d: pip.conf\n%s\nwant\n%s", i, got, want)
		}
		r = runScript(t, filepath.Join(hooks, "post-install.d", "00-unconfigure-pypi-mirror"), map[string]string{"HOME": home})
		if r.code != 0 {
			t.Fatalf("case %d: unconfigure: %d %s", i, r.code, r.out)
		}
		if got := readFile(t, filepath.Join(home, ".pip", "pip.conf")); got != "[global]\nindex-url = http://old/\n" {
			t.Errorf("case %d: pip.conf not restored: %q", i, got)
		}
	}
}

// TestDebianMinimalAptSources: as DIB, the bootstrap's apt sources go
// (debootstrap's root.d) and each NAME:LINE of DIB_APT_SOURCES_CONF (by
// default the release, -updates and security) becomes
// sources.list.d/NAME.list; DIB_DEBIAN_KEYRING is trusted in the tree.
func TestDebianMinimalAptSources(t *testing.T) {
	hooks := hooksTree(t, "debootstrap", "debian-minimal")
	bin, calls := fakeBin(t, "chroot", "mountpoint")
	run := func(extra map[string]string) string {
		root := t.TempDir()
		for _, f := range []string{"etc/debian_version", "usr/bin/dpkg", "var/lib/dpkg/status"} {
			writeFile(t, filepath.Join(root, f), "x\n", 0o644)
		}
		writeFile(t, filepath.Join(root, "var/lib/apt/lists/lock"), "", 0o644)
		writeFile(t, filepath.Join(root, "etc/apt/sources.list"), "deb http://bootstrap bookworm main\n", 0o644)
		writeFile(t, filepath.Join(root, "etc/apt/sources.list.d/debian.sources"), "Types: deb\n", 0o644)
		driver := filepath.Join(t.TempDir(), "driver")
		writeFile(t, driver, "#!/bin/bash\nset -eu\n. "+hooks+"/environment.d/10-debian-minimal.bash\n"+
			hooks+"/root.d/08-debootstrap\n"+hooks+"/root.d/75-debian-minimal-baseinstall\n", 0o755)
		env := map[string]string{"TARGET_ROOT": root, "PATH": bin + ":" + os.Getenv("PATH"), "DIB_RELEASE": "bookworm"}
		for k, v := range extra {
			env[k] = v
		}
		if r := runScript(t, driver, env); r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.out)
		}
		var out []string
		filepath.WalkDir(filepath.Join(root, "etc/apt"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(root, p)
				out = append(out, rel+"="+readFile(t, p))
			}
			return nil
		})
		return strings.Join(out, "")
	}
	want := "etc/apt/sources.list.d/default.list=deb http://deb.debian.org/debian bookworm main\n" +
		"etc/apt/sources.list.d/security.list=deb http://security.debian.org/debian-security bookworm-security main\n" +
		"etc/apt/sources.list.d/updates.list=deb http://deb.debian.org/debian bookworm-updates main\n"
	if got := run(nil); got != want {
		t.Errorf("default sources:\n%s\nwant\n%s", got, want)
	}
	key := filepath.Join(t.TempDir(), "key.asc")
	writeFile(t, key, "-----BEGIN PGP PUBLIC KEY BLOCK-----\nxx\n", 0o600)
	got := run(map[string]string{"DIB_APT_SOURCES_CONF": "local:deb [trusted=yes] http://mirror.example/debian bookworm main contrib", "DIB_DEBIAN_KEYRING": key})
	want = "etc/apt/sources.list.d/local.list=deb [trusted=yes] http://mirror.example/debian bookworm main contrib\n" +
		"etc/apt/trusted.gpg.d/dib-keyring.asc=-----BEGIN PGP PUBLIC KEY BLOCK-----\nxx\n"
	if got != want {
		t.Errorf("DIB_APT_SOURCES_CONF and keyring:\n%s\nwant\n%s", got, want)
	}
	if c := readFile(t, calls); !strings.Contains(c, "chroot ") {
		t.Errorf("apt-get did not run in the tree: %q", c)
	}
}
