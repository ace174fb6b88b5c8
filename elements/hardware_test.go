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
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(up, p))
		if err != nil {
			t.Errorf("%s: %v\n%s", p, err, out)
		}
		return string(b)
	}
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
