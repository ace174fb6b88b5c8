package elements

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// growvols --noop against stand-ins for lsblk, sgdisk, blockdev, vgs and
// lvs: a 10 GiB free area behind sda2's volume group.
func TestGrowvols(t *testing.T) {
	requireTool(t, "python3")
	hooks := hooksTree(t, "growvols")
	tool := filepath.Join(hooks, "static", "usr", "local", "sbin", "growvols")
	lsblk := `KNAME="sda" PKNAME="" NAME="sda" LABEL="" TYPE="disk" FSTYPE="" MOUNTPOINT=""
KNAME="sda1" PKNAME="sda" NAME="sda1" LABEL="" TYPE="part" FSTYPE="vfat" MOUNTPOINT="/boot/efi"
KNAME="sda2" PKNAME="sda" NAME="sda2" LABEL="" TYPE="part" FSTYPE="LVM2_member" MOUNTPOINT=""
KNAME="dm-0" PKNAME="sda2" NAME="vg-lv_root" LABEL="img-rootfs" TYPE="lvm" FSTYPE="xfs" MOUNTPOINT="/"
KNAME="dm-1" PKNAME="sda2" NAME="vg-lv_var" LABEL="fs_var" TYPE="lvm" FSTYPE="xfs" MOUNTPOINT="/var"
KNAME="dm-2" PKNAME="sda2" NAME="vg-lv_home" LABEL="fs_home" TYPE="lvm" FSTYPE="ext4" MOUNTPOINT="/home"
`
	type env struct{ end, lvs, gpt string }
	setup := func(e env) (map[string]string, string) {
		bin := t.TempDir()
		writeFile(t, filepath.Join(bin, "lsblk.out"), lsblk, 0o644)
		writeFile(t, filepath.Join(bin, "lvs.out"), e.lvs, 0o644)
		calls := filepath.Join(bin, "calls")
		for name, body := range map[string]string{
			"lsblk":    `cat "$(dirname "$0")/lsblk.out"`,
			"blockdev": "echo 512",
			"vgs":      "echo '  vg'",
			"lvs":      `cat "$(dirname "$0")/lvs.out"`,
			"sgdisk": `case "$1" in
-v) printf '%s\n' ` + e.gpt + ` ;;
--first-aligned-in-largest) printf '4194304\n` + e.end + `\n' ;;
esac`,
			"partprobe": "true",
		} {
			writeFile(t, filepath.Join(bin, name), "#!/bin/sh\necho \""+name+" $*\" >> '"+calls+"'\n"+body+"\n", 0o755)
		}
		return map[string]string{"PATH": bin + ":" + os.Getenv("PATH")}, calls
	}
	lvsPlain := "  lv_root /dev/mapper/vg-lv_root -wi-ao---- \n  lv_var /dev/mapper/vg-lv_var -wi-ao---- \n"

	e, calls := setup(env{end: "25165824", lvs: lvsPlain, gpt: "'No problems found.'"})
	r := runScript(t, tool, e, "--noop", "/var=50%", "img-rootfs=2GiB")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.out)
	}
	want := `The following commands would run:

# Create partition sda3
sgdisk --new=3:4194304:25165824 --change-name=3:growvols /dev/sda

# Tell the kernel about the new partition
partprobe

# Make sda3 an LVM physical volume
pvcreate -ff --yes /dev/sda3

# Add it to volume group vg
vgextend vg /dev/sda3

# Grow /dev/mapper/vg-lv_var by 5GiB
lvextend --size +5360320512B /dev/mapper/vg-lv_var /dev/sda3

# Grow /dev/mapper/vg-lv_root by 5GiB
lvextend --size +5360320512B /dev/mapper/vg-lv_root /dev/sda3

# Grow the XFS filesystem of /dev/mapper/vg-lv_var
xfs_growfs /dev/mapper/vg-lv_var

# Grow the XFS filesystem of /dev/mapper/vg-lv_root
xfs_growfs /dev/mapper/vg-lv_root
`
	if r.out != want {
		t.Errorf("plain volumes:\n%s\nwant\n%s", r.out, want)
	}
	if got := readFile(t, calls); strings.Contains(got, "sgdisk -e") || strings.Contains(got, "--new") {
		t.Errorf("--noop ran something: %q", got)
	}

	// A thin pool grows instead of the volumes; a misplaced backup GPT is
	// moved first; GROWVOLS_ARGS is the default argument list.
	e, calls = setup(env{end: "25165824", gpt: "\"Problem: The secondary header's self-pointer indicates that it doesn't reside\nat the end of the disk.\"",
		lvs: "  pool /dev/mapper/vg-pool twi-aotz-- \n  lv_root /dev/mapper/vg-lv_root Vwi-aotz-- pool\n  lv_var /dev/mapper/vg-lv_var Vwi-aotz-- pool\n"})
	e["GROWVOLS_ARGS"] = "fs_var=1GiB"
	r = runScript(t, tool, e, "--noop")
	if r.code != 0 {
		t.Fatalf("thin: exit %d\n%s", r.code, r.out)
	}
	for _, w := range []string{
		"lvextend --poolmetadatasize +1073741824B vg/pool\n",
		"lvextend -L+8577351680B /dev/mapper/vg-pool /dev/sda3\n",
		"lvextend --size +1065353216B /dev/mapper/vg-lv_var\n",
		"lvextend --size +7503609856B /dev/mapper/vg-lv_root\n",
	} {
		if !strings.Contains(r.out, w) {
			t.Errorf("thin pool: output lacks %q:\n%s", w, r.out)
		}
	}
	if got := readFile(t, calls); !strings.Contains(got, "sgdisk -e /dev/sda\npartprobe \n") {
		t.Errorf("backup GPT not moved: %q", got)
	}

	// Errors: an ext4 volume, a bad argument; too little space: nothing,
	// or exit 2 with --exit-on-no-grow.
	e, _ = setup(env{end: "25165824", lvs: lvsPlain, gpt: "ok"})
	for arg, msg := range map[string]string{"/home=10%": "only XFS", "/var": "VOLUME=AMOUNTUNIT", "/srv=1GB": "no volume labelled"} {
		if r := runScript(t, tool, e, "--noop", arg); r.code == 0 || !strings.Contains(r.out, msg) {
			t.Errorf("%s: exit %d, want an error about %q:\n%s", arg, r.code, msg, r.out)
		}
	}
	e, _ = setup(env{end: "5242880", lvs: lvsPlain, gpt: "ok"})
	if r := runScript(t, tool, e, "--noop"); r.code != 0 || !strings.Contains(r.out, "at least 1GiB needed") {
		t.Errorf("small disk: exit %d\n%s", r.code, r.out)
	}
	if r := runScript(t, tool, e, "--exit-on-no-grow"); r.code != 2 {
		t.Errorf("small disk, --exit-on-no-grow: exit %d\n%s", r.code, r.out)
	}
}

// lvm's checks and its finalise hook on an LVM root; growvols' boot-time
// trigger. In a chroot, with stand-ins for findmnt, pvs, update-initramfs,
// grub-mkconfig and systemctl.
func TestLvmAndGrowvolsInChroot(t *testing.T) {
	t.Parallel()
	hooks := hooksTree(t, "lvm", "growvols")
	for name, body := range map[string]string{
		"findmnt":          `echo "${FAKE_ROOT_SOURCE:-/dev/mapper/vg-lv_root} ext4"`,
		"pvs":              "exit 0",
		"update-initramfs": "exit 0",
		"systemctl":        "exit 0",
		"grub-mkconfig":    `printf 'menuentry x {\n  linux /boot/vmlinuz root=/dev/mapper/vg-lv_root\n}\n' > "$2"`,
	} {
		writeFile(t, filepath.Join(hooks, "bin", name), "#!/bin/sh\necho \""+name+" $*\" >> /var/log/lvm-calls\n"+body+"\n", 0o755)
	}
	steps := `
h=/tmp/in_target.d
mkdir -p /etc/initramfs-tools /etc/default /boot/grub
printf 'GRUB_DEFAULT=0\nGRUB_DEVICE=LABEL=cloudimg-rootfs\n' > /etc/default/grub
FAKE_ROOT_SOURCE=/dev/mapper/loop0p1 $h/finalise.d/60-bootloader
$h/finalise.d/60-bootloader
$h/finalise.d/60-bootloader
cp /boot/grub/grub.cfg /etc/initramfs-tools/modules /var/log/
rm /etc/initramfs-tools/modules
rmdir /etc/initramfs-tools 2>/dev/null || rm -rf /etc/initramfs-tools
if $h/finalise.d/60-bootloader 2>/var/log/lvm-noinitramfs; then exit 9; fi

DIB_GROWVOLS_TRIGGER=manual $h/post-install.d/80-growvols
[ ! -e /etc/default/growvols ] || exit 8
DIB_GROWVOLS_TRIGGER=systemd DIB_GROWVOLS_ARGS="/var=80% /home=20GB" DIB_GROWVOLS_GROUP=vg DIB_GROWVOLS_DEVICE=sda DIB_INIT_SYSTEM=systemd $h/post-install.d/80-growvols
if DIB_GROWVOLS_TRIGGER=udev $h/post-install.d/80-growvols 2>/var/log/growvols-bad; then exit 7; fi
`
	up, out := overlayChroot(t, hooks, steps)
	read := func(p string) string { return readUp(t, up, out, p) }
	if got := read("etc/default/grub"); got != "GRUB_DEFAULT=0\nGRUB_DEVICE=/dev/mapper/vg-lv_root\n" {
		t.Errorf("/etc/default/grub %q", got)
	}
	if got := read("var/log/modules"); got != "lvm2\n" {
		t.Errorf("initramfs modules %q (lvm2 once)", got)
	}
	if got := read("etc/default/growvols"); got != "GROWVOLS_ARGS=\"/var=80% /home=20GB\"\nGROWVOLS_GROUP=\"vg\"\nGROWVOLS_DEVICE=\"sda\"\n" {
		t.Errorf("/etc/default/growvols %q", got)
	}
	if got := read("var/log/grub.cfg"); !strings.Contains(got, "root=/dev/mapper/vg-lv_root") {
		t.Errorf("grub.cfg %q", got)
	}
	want := "findmnt -n -o SOURCE,FSTYPE /\n" +
		"findmnt -n -o SOURCE,FSTYPE /\nupdate-initramfs -u -v\ngrub-mkconfig -o /boot/grub/grub.cfg.lvm\n" +
		"findmnt -n -o SOURCE,FSTYPE /\nupdate-initramfs -u -v\ngrub-mkconfig -o /boot/grub/grub.cfg.lvm\n" +
		"findmnt -n -o SOURCE,FSTYPE /\n" +
		"systemctl enable growvols.service\n"
	if got := read("var/log/lvm-calls"); got != want {
		t.Errorf("calls\n%s\nwant\n%s", got, want)
	}
	if got := read("var/log/lvm-noinitramfs"); !strings.Contains(got, "needs initramfs-tools") {
		t.Errorf("no initramfs-tools: %q", got)
	}
	if got := read("var/log/growvols-bad"); !strings.Contains(got, "unsupported DIB_GROWVOLS_TRIGGER=udev") {
		t.Errorf("bad trigger: %q", got)
	}
}

// lvm's distribution check.
func TestLvmDistroCheck(t *testing.T) {
	hooks := hooksTree(t, "lvm")
	for _, c := range []struct {
		distro, release string
		code            int
	}{{"ubuntu", "noble", 0}, {"ubuntu", "trusty", 1}, {"debian", "bookworm", 1}} {
		r := runScript(t, filepath.Join(hooks, "root.d", "10-lvm-check-distro"), map[string]string{"DISTRO_NAME": c.distro, "DIB_RELEASE": c.release})
		if r.code != c.code {
			t.Errorf("%s %s: exit %d, want %d\n%s", c.distro, c.release, r.code, c.code, r.out)
		}
	}
}
