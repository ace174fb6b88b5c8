package elements

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dhcp-all-interfaces in a chroot: the installer for systemd and sysv, the
// NetworkManager settings, dhclient's timeout; then the boot-time script
// against a stand-in /sys/class/net (physical, VLAN, InfiniBand, generated
// MAC, no carrier, already configured) and stand-in rdisc6 answers
// (stateful, stateless, SLAAC, no router), writing ifupdown stanzas and then
// Red Hat ifcfg files.
func TestDhcpAllInterfacesInChroot(t *testing.T) {
	t.Parallel()
	hooks := hooksTree(t, "dhcp-all-interfaces", "dib-init-system")
	writeFile(t, filepath.Join(hooks, "bin", "ip"), "#!/bin/sh\nexit 0\n", 0o755)
	writeFile(t, filepath.Join(hooks, "bin", "ifquery"), "#!/bin/sh\n[ \"$1\" = eth9 ] && { echo 'address: 192.0.2.9'; exit 0; }\ngrep -q \"^iface $1 \" /etc/network/interfaces && { echo 'method: dhcp'; exit 0; }\necho \"unknown interface $1\" >&2\nexit 1\n", 0o755)
	writeFile(t, filepath.Join(hooks, "bin", "rdisc6"), "#!/bin/sh\n[ -f \"/tmp/ra/$4\" ] || exit 2\ncat \"/tmp/ra/$4\"\n", 0o755)
	for _, n := range []string{"update-rc.d", "chkconfig", "dnf"} {
		writeFile(t, filepath.Join(hooks, "bin", n), "#!/bin/sh\necho \""+n+" $*\" >> /var/log/dhcp-calls\n", 0o755)
	}
	steps := `
h=/tmp/in_target.d/install.d
net=/sys/class/net
iface() { mkdir -p $net/$1; echo $2 > $net/$1/type; echo $3 > $net/$1/addr_assign_type; echo $4 > $net/$1/carrier; }
iface lo 772 0 1
iface eth0 1 0 1
iface eth0.100 1 2 1
iface eth1 1 0 1
iface eth2 1 0 1
iface eth3 1 1 1
iface eth4 1 0 0
iface eth9 1 0 1
iface ib0 32 0 1
ra() { mkdir -p /tmp/ra; printf 'Hop limit                 :           64 (      0x40)\nStateful address conf.    :          %s\nStateful other conf.      :          %s\nRouter lifetime           :         1800 (0x00000708) seconds\n' $2 $3 > /tmp/ra/$1; }
ra eth0 Yes No
ra eth1 No Yes
ra eth2 No No
echo 0123456789abcdef0123456789abcdef > /etc/machine-id

mkdir -p /etc/NetworkManager /etc/dhcp
printf 'option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;\ntimeout 300;\nretry 60;\n' > /etc/dhcp/dhclient.conf
rm -f /usr/local/sbin/dhcp-all-interfaces.sh
DIB_DHCP_NETWORK_MANAGER_AUTO=true DIB_INIT_SYSTEM=systemd DISTRO_NAME=debian $h/50-dhcp-all-interfaces
[ ! -e /usr/local/sbin/dhcp-all-interfaces.sh ] || { echo "installed with NetworkManager auto"; exit 9; }
DIB_DHCP_TIMEOUT=1 DIB_DHCP_CLIENT=dhclient DIB_INIT_SYSTEM=systemd DISTRO_NAME=debian $h/50-dhcp-all-interfaces
cp /usr/lib/systemd/system/dhcp-interface@.service /etc/dhcp/dhclient.conf /var/log/
DIB_DHCP_TIMEOUT=1 DIB_INIT_SYSTEM=sysv DISTRO_NAME=debian $h/50-dhcp-all-interfaces

mkdir -p /etc/network/interfaces.d
echo 'auto eth0' > /etc/network/interfaces.d/50-cloud-init.cfg
echo 'iface eth0 inet dhcp' > /etc/network/interfaces
DISTRO_NAME=debian DIB_RELEASE=bookworm $h/60-remove-cloud-image-interfaces
cp /etc/network/interfaces /var/log/eni-after-remove

/usr/local/sbin/dhcp-all-interfaces.sh > /var/log/dhcp-eni.out
/usr/local/sbin/dhcp-all-interfaces.sh eth1 >> /var/log/dhcp-eni.out  # configured now: skipped

mv /etc/network /etc/network.off
mkdir -p /etc/sysconfig/network-scripts
echo 'DEVICE=eth9' > /etc/sysconfig/network-scripts/ifcfg-eth9
/usr/local/sbin/dhcp-all-interfaces.sh > /var/log/dhcp-ifcfg.out
cp -r /etc/sysconfig/network-scripts /var/log/ifcfg
echo 'DEVICE=lo' > /etc/sysconfig/network-scripts/ifcfg-lo
$h/60-remove-cloud-image-interfaces
ls /etc/sysconfig/network-scripts > /var/log/ifcfg-after-remove

touch /etc/redhat-release
DIB_RELEASE=8 DIB_INIT_SYSTEM=systemd DISTRO_NAME=centos $h/50-dhcp-all-interfaces
cp /etc/NetworkManager/conf.d/00-main.conf /var/log/nm-centos8
DIB_RELEASE=9 DIB_INIT_SYSTEM=systemd DISTRO_NAME=centos $h/50-dhcp-all-interfaces
`
	up, out := overlayChroot(t, hooks, steps)
	read := func(p string) string { return readUp(t, up, out, p) }

	if got := read("var/log/dhcp-interface@.service"); !strings.Contains(got, "TimeoutStartSec=2s\n") ||
		!strings.Contains(got, "ExecStartPre=/usr/local/sbin/dhcp-all-interfaces.sh %i\n") {
		t.Errorf("dhcp-interface@.service:\n%s", got)
	}
	if got := read("etc/udev/rules.d/99-dhcp-all-interfaces.rules"); !strings.Contains(got, `ENV{SYSTEMD_WANTS}+="dhcp-interface@$name.service"`) {
		t.Errorf("udev rule:\n%s", got)
	}
	if got := read("var/log/dhclient.conf"); got != "option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;\n"+
		"# timeout set by dhcp-all-interfaces\ntimeout 1;\n# retry disabled by dhcp-all-interfaces\n# retry 60;\n" {
		t.Errorf("dhclient.conf:\n%s", got)
	}
	if got := read("etc/dhcp/dhclient.conf"); strings.Count(got, "# timeout set") != 1 || strings.Count(got, "# retry disabled") != 1 {
		t.Errorf("dhclient.conf after several runs:\n%s", got)
	}
	for file, want := range map[string][]string{
		"var/log/nm-centos8":                     {"dhcp=dhclient\n", "ipv4.dhcp-timeout=30\n", "ignore-carrier=*\n", "autoconnect-retries=-1\n"},
		"etc/NetworkManager/conf.d/00-main.conf": {"dhcp=internal\n", "ipv6.dhcp-timeout=30\n"},
	} {
		got := read(file)
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s lacks %q:\n%s", file, w, got)
			}
		}
	}
	if got, want := read("var/log/dhcp-calls"), "update-rc.d dhcp-all-interfaces defaults\ndnf -y install ndisc6\ndnf -y install ndisc6\n"; got != want {
		t.Errorf("calls %q, want %q", got, want)
	}
	if got, want := read("var/log/eni-after-remove"), "auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n\n"; got != want {
		t.Errorf("interfaces after 60-remove-cloud-image-interfaces %q, want %q", got, want)
	}
	if _, err := os.Lstat(filepath.Join(up, "etc/network.off/interfaces.d/50-cloud-init.cfg")); err == nil {
		t.Error("50-cloud-init.cfg kept")
	}
	wantENI := "auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n\n" +
		"auto eth0\niface eth0 inet dhcp\n\niface eth0 inet6 dhcp\n\n\n" +
		"auto eth0.100\niface eth0.100 inet dhcp\n\n\n" +
		"auto eth1\niface eth1 inet dhcp\n\niface eth1 inet6 auto\n\tdhcp 1\n\n\n" +
		"auto eth2\niface eth2 inet dhcp\n\niface eth2 inet6 auto\n\tdhcp 0\n\n\n" +
		"auto ib0\niface ib0 inet dhcp\n\n\n"
	if got := read("etc/network.off/interfaces"); got != wantENI {
		t.Errorf("/etc/network/interfaces:\n%s\nwant\n%s\n%s", got, wantENI, read("var/log/dhcp-eni.out"))
	}
	log := read("var/log/dhcp-eni.out")
	for _, w := range []string{"eth3: generated MAC", "eth4: no link", "eth9: already configured", "eth1: already configured"} {
		if !strings.Contains(log, w) {
			t.Errorf("script output lacks %q:\n%s", w, log)
		}
	}
	var duid strings.Builder
	for i := 0; i < 32; i += 2 {
		fmt.Fprintf(&duid, `\x%s`, "0123456789abcdef0123456789abcdef"[i:i+2])
	}
	wantLease := `default-duid "\x00\x04` + duid.String() + "\";\n"
	for _, l := range []string{"var/lib/dhcp/dhclient6--eth0.lease", "var/lib/dhclient/dhclient6--eth1.lease"} {
		if got := read(l); got != wantLease {
			t.Errorf("%s = %q, want %q", l, got, wantLease)
		}
	}
	for f, want := range map[string]string{
		"ifcfg-eth9":     "DEVICE=eth9\n",
		"ifcfg-eth0":     "DEVICE=\"eth0\"\nBOOTPROTO=\"dhcp\"\nONBOOT=\"yes\"\nTYPE=\"Ethernet\"\nIPV6INIT=\"yes\"\nIPV6_FORCE_ACCEPT_RA=\"yes\"\nDHCPV6C=\"yes\"\n",
		"ifcfg-eth0.100": "DEVICE=\"eth0.100\"\nBOOTPROTO=\"dhcp\"\nONBOOT=\"yes\"\nVLAN=\"yes\"\n",
		"ifcfg-eth1":     "DEVICE=\"eth1\"\nBOOTPROTO=\"dhcp\"\nONBOOT=\"yes\"\nTYPE=\"Ethernet\"\nIPV6INIT=\"yes\"\nIPV6_AUTOCONF=\"yes\"\nDHCPV6C=\"yes\"\nDHCPV6C_OPTIONS=\"-S\"\n",
		"ifcfg-eth2":     "DEVICE=\"eth2\"\nBOOTPROTO=\"dhcp\"\nONBOOT=\"yes\"\nTYPE=\"Ethernet\"\nIPV6INIT=\"yes\"\nIPV6_AUTOCONF=\"yes\"\n",
		"ifcfg-ib0": "DEVICE=\"ib0\"\nBOOTPROTO=\"dhcp\"\nONBOOT=\"yes\"\nTYPE=\"InfiniBand\"\nCONNECTED_MODE=\"no\"\nDEFROUTE=\"yes\"\n" +
			"PEERDNS=\"yes\"\nPEERROUTES=\"yes\"\nIPV4_FAILURE_FATAL=\"yes\"\nIPV6INIT=\"no\"\n",
	} {
		if got := read("var/log/ifcfg/" + f); got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
	if got := read("var/log/ifcfg-after-remove"); got != "ifcfg-lo\n" {
		t.Errorf("network-scripts after 60-remove-cloud-image-interfaces: %q", got)
	}
}

// cloud-init-datasources and local-config's in-image hooks, in a chroot.
func TestCloudInitDatasourcesAndLocalConfigInChroot(t *testing.T) {
	t.Parallel()
	hooks := hooksTree(t, "cloud-init-datasources", "local-config")
	writeFile(t, filepath.Join(hooks, "ssh-authorized-keys"), "ssh-ed25519 AAAAlocal me@desk\n", 0o644)
	steps := `
h=/tmp/in_target.d
c=/etc/cloud/cloud.cfg.d
rm -rf /etc/cloud
if DIB_CLOUD_INIT_DATASOURCES= $h/install.d/05-set-cloud-init-sources 2>/var/log/ds-unset; then exit 9; fi
DIB_CLOUD_INIT_DATASOURCES=Ec2 $h/install.d/05-set-cloud-init-sources
[ ! -e $c ] || exit 8
mkdir -p $c
DIB_CLOUD_INIT_DATASOURCES="Ec2 ,ConfigDrive,  OpenStack" $h/install.d/05-set-cloud-init-sources
mkdir -p /var/log/ds1 && mv $c/* /var/log/ds1/
DIB_CLOUD_INIT_DATASOURCES="None" $h/install.d/05-set-cloud-init-sources
mkdir -p /var/log/ds2 && mv $c/* /var/log/ds2/

$h/install.d/62-ssh-key
useradd -m -d /home/ops ops
DIB_LOCAL_CONFIG_USERNAME=ops $h/install.d/62-ssh-key
stat -c %a /home/ops/.ssh /home/ops/.ssh/authorized_keys > /var/log/ops-modes

rm -f /etc/apt/apt.conf.d/02-*
printf '[main]\ngpgcheck=1\n' > /etc/yum.conf
useradd -m -d /home/stack stack
http_proxy=http://proxy.example:3128 https_proxy=http://sproxy.example:3129 no_proxy="localhost, .example.org" $h/pre-install.d/02-proxy-settings
`
	up, out := overlayChroot(t, hooks, steps)
	read := func(p string) string { return readUp(t, up, out, p) }
	if got := read("var/log/ds-unset"); !strings.Contains(got, "DIB_CLOUD_INIT_DATASOURCES is not set") {
		t.Errorf("unset variable: %q", got)
	}
	for p, want := range map[string]string{
		"var/log/ds1/91-dib-cloud-init-datasources.cfg":                           "datasource_list: [ Ec2, ConfigDrive, OpenStack, None ]\n",
		"var/log/ds1/92-ec2-datasource.cfg":                                       "#cloud-config\ndatasource:\n    Ec2:\n        strict_id: false\n",
		"var/log/ds1/93-dib-cloud-init-disable-datasource-network-activation.cfg": "disable_network_activation: true\n",
		"var/log/ds2/91-dib-cloud-init-datasources.cfg":                           "datasource_list: [ None ]\n",
		"root/.ssh/authorized_keys":                                               "ssh-ed25519 AAAAlocal me@desk\n",
		"home/ops/.ssh/authorized_keys":                                           "ssh-ed25519 AAAAlocal me@desk\n",
		"var/log/ops-modes":                                                       "700\n600\n",
		"etc/apt/apt.conf.d/02-use-http-proxy":                                    "Acquire::http::Proxy \"http://proxy.example:3128\";\n",
		"etc/apt/apt.conf.d/02-use-https-proxy":                                   "Acquire::https::Proxy \"http://sproxy.example:3129\";\n",
		"etc/apt/apt.conf.d/02-no-proxy":                                          "Acquire::http::Proxy::localhost \"DIRECT\";\nAcquire::http::Proxy::.example.org \"DIRECT\";\nAcquire::http::Proxy::192.0.2.1 \"DIRECT\";\n",
		"etc/yum.conf":                                                            "[main]\nproxy=http://proxy.example:3128\ngpgcheck=1\n",
		"home/stack/.profile":                                                     "", // checked below
	} {
		got := read(p)
		if p == "home/stack/.profile" {
			if !strings.HasSuffix(got, "export http_proxy=http://proxy.example:3128\nexport https_proxy=http://sproxy.example:3129\nexport no_proxy=localhost, .example.org,192.0.2.1\n") {
				t.Errorf("stack's .profile:\n%s", got)
			}
			continue
		}
		if got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	for _, p := range []string{"var/log/ds2/92-ec2-datasource.cfg", "var/log/ds2/93-dib-cloud-init-disable-datasource-network-activation.cfg"} {
		if _, err := os.Stat(filepath.Join(up, p)); err == nil {
			t.Errorf("%s written for None alone", p)
		}
	}
	if got := read("etc/environment"); !strings.Contains(got, "http_proxy=http://proxy.example:3128\n") {
		t.Errorf("/etc/environment:\n%s", got)
	}
}

// local-config's host hook: the building user's authorized_keys, or
// DIB_LOCAL_CONFIG_SSH_KEY's file, or nothing.
func TestLocalConfigKeys(t *testing.T) {
	hooks := hooksTree(t, "local-config")
	home := t.TempDir()
	writeFile(t, filepath.Join(home, ".ssh", "authorized_keys"), "ssh-rsa AAAAhome a@b\n", 0o600)
	other := filepath.Join(t.TempDir(), "keys")
	writeFile(t, other, "ssh-ed25519 AAAAother c@d\n", 0o644)
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"HOME": home}, "ssh-rsa AAAAhome a@b\n"},
		{map[string]string{"HOME": home, "DIB_LOCAL_CONFIG_SSH_KEY": other}, "ssh-ed25519 AAAAother c@d\n"},
		{map[string]string{"HOME": home, "DIB_LOCAL_CONFIG_SSH_KEY": ""}, ""},
		{map[string]string{"HOME": t.TempDir()}, ""},
	} {
		tmp := t.TempDir()
		c.env["TMP_HOOKS_PATH"] = tmp
		r := runScript(t, filepath.Join(hooks, "extra-data.d", "62-ssh-key"), c.env)
		if r.code != 0 {
			t.Fatalf("%v: exit %d: %s", c.env, r.code, r.out)
		}
		got, _ := os.ReadFile(filepath.Join(tmp, "ssh-authorized-keys"))
		if string(got) != c.want {
			t.Errorf("%v: copied %q, want %q", c.env, got, c.want)
		}
	}
}

// enable-serial-console's cleanup.d/99-fix-grub edits a legacy grub.conf
// and leaves an image without one alone.
func TestFixGrubSerial(t *testing.T) {
	hooks := hooksTree(t, "enable-serial-console")
	root := t.TempDir()
	r := runScript(t, filepath.Join(hooks, "cleanup.d", "99-fix-grub"), map[string]string{"TARGET_ROOT": root})
	if r.code != 0 {
		t.Fatalf("no grub.conf: exit %d: %s", r.code, r.out)
	}
	writeFile(t, filepath.Join(root, "boot", "grub", "grub.conf"), `default=0
timeout=5
splashimage=(hd0,0)/grub/splash.xpm.gz
hiddenmenu
serial --unit=1 --speed=115200
terminal --timeout=10 serial
title CentOS (2.6.32)
	root (hd0,0)
	kernel /vmlinuz-2.6.32 ro root=LABEL=img-rootfs rhgb quiet console=tty0
	initrd /initramfs-2.6.32.img
`, 0o644)
	r = runScript(t, filepath.Join(hooks, "cleanup.d", "99-fix-grub"), map[string]string{"TARGET_ROOT": root})
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.out)
	}
	want := `default=0
serial --unit=0 --speed=9600 --word=8 --parity=no --stop=1
terminal --timeout=5 serial console
timeout=5
title CentOS (2.6.32)
	root (hd0,0)
	kernel /vmlinuz-2.6.32 ro root=LABEL=img-rootfs console=tty0
	initrd /initramfs-2.6.32.img
`
	if got := readFile(t, filepath.Join(root, "boot", "grub", "grub.conf")); got != want {
		t.Errorf("grub.conf:\n%s\nwant\n%s", got, want)
	}
}

// bootloader's options: no serial console (DIB_BOOTLOADER_USE_SERIAL_CONSOLE),
// no no_timer_check (DIB_NO_TIMER_CHECK), a separate /boot (DIB_BOOT_LABEL),
// FIPS, consoles the base image left in /etc/default/grub; DIB_EXTLINUX
// refused; /tmp/grub/install skips; GRUB into the PReP partition on Power.
func TestBootloaderOptionsInChroot(t *testing.T) {
	t.Parallel()
	requireTool(t, "grub-mkconfig")
	hooks := hooksTree(t, "bootloader", "pkg-map", "dpkg")
	writeFile(t, filepath.Join(hooks, "bin", "grub-install"), "#!/bin/sh\necho \"grub-install $*\" >> /var/log/grub-install\n", 0o755)
	steps := `
h=/tmp/in_target.d/finalise.d/50-bootloader
echo kernel > /boot/vmlinuz-9.9.9-dib
printf '#!/bin/sh\nexit 1\n' > /bin/fips-mode-setup; chmod 755 /bin/fips-mode-setup
mkdir -p /etc/default
printf 'GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX="console=ttyS0,115200n8 console=tty0 boot=UUID=1234 quiet"\n' > /etc/default/grub
DIB_BOOTLOADER_USE_SERIAL_CONSOLE=False DIB_NO_TIMER_CHECK=False DIB_BOOT_LABEL=bootfs DIB_BOOTLOADER_VIRTUAL_TERMINAL= $h
mkdir -p /var/log/bl && cp /etc/default/grub /etc/default/grub.d/50-dib-bootloader.cfg /boot/grub/grub.cfg /var/log/bl/
if DIB_EXTLINUX=1 $h 2>/var/log/bl/extlinux; then exit 9; fi
mkdir -p /tmp/grub && touch /tmp/grub/install
rm /boot/grub/grub.cfg
$h > /var/log/bl/skip
[ ! -e /boot/grub/grub.cfg ] || exit 8
rm /tmp/grub/install
ARCH=ppc64el DIB_BOOTLOADER_INSTALL_BOOT_CODE=1 IMAGE_BLOCK_DEVICE=/dev/loop7 IMAGE_BLOCK_DEVICES="[boot]=/dev/loop7p1 [root]=/dev/loop7p2" $h
`
	up, out := overlayChroot(t, hooks, steps, "ARCH=amd64", "DISTRO_NAME=debian", "DIB_ROOT_LABEL=dibroot",
		"DIB_SKIP_GRUB_PACKAGE_INSTALL=True", "DIB_BLOCK_DEVICE=mbr")
	read := func(p string) string { return readUp(t, up, out, p) }
	if got := read("var/log/bl/grub"); got != "GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX=\"quiet\"\n" {
		t.Errorf("/etc/default/grub keeps the base image's consoles or boot=: %q", got)
	}
	def := read("var/log/bl/50-dib-bootloader.cfg")
	for _, w := range []string{`GRUB_CMDLINE_LINUX_DEFAULT="nofb nomodeset gfxpayload=text boot=LABEL=bootfs fips=1"`,
		`GRUB_TERMINAL="console"`, "GRUB_TIMEOUT_STYLE=menu\n"} {
		if !strings.Contains(def, w) {
			t.Errorf("50-dib-bootloader.cfg lacks %q:\n%s", w, def)
		}
	}
	if strings.Contains(def, "GRUB_SERIAL_COMMAND") || strings.Contains(def, "no_timer_check") {
		t.Errorf("serial or no_timer_check left in:\n%s", def)
	}
	cfg := read("var/log/bl/grub.cfg")
	if !strings.Contains(cfg, "linux /boot/vmlinuz-9.9.9-dib root=LABEL=dibroot ro nofb nomodeset gfxpayload=text boot=LABEL=bootfs fips=1\n") ||
		strings.Contains(cfg, "serial") {
		t.Errorf("grub.cfg:\n%s", cfg)
	}
	if got := read("var/log/bl/extlinux"); !strings.Contains(got, "DIB_EXTLINUX is no longer supported") {
		t.Errorf("DIB_EXTLINUX: %q", got)
	}
	if got := read("var/log/bl/skip"); !strings.Contains(got, "/tmp/grub/install exists") {
		t.Errorf("/tmp/grub/install: %q", got)
	}
	if got := read("var/log/grub-install"); got != "grub-install --modules=part_msdos --force /dev/loop7p1 --no-nvram\n" {
		t.Errorf("PReP install %q", got)
	}
}
