package compiler

import (
	"sort"

	"github.com/dibuild/dib/compiler/plan"
)

// toolPackages maps every external program a plan step may run to the
// Debian package that provides it on a Debian 12 host.
var toolPackages = map[string]string{
	"bash":               "bash",
	"chroot":             "coreutils",
	"cp":                 "coreutils",
	"md5sum":             "coreutils",
	"sha256sum":          "coreutils",
	"mount":              "mount",
	"umount":             "mount",
	"losetup":            "mount",
	"unshare":            "util-linux",
	"mkswap":             "util-linux",
	"mmdebstrap":         "mmdebstrap",
	"dnf":                "dnf-plugins-core", // dnf, and its download command
	"rpm":                "rpm",
	"tar":                "tar",
	"gzip":               "gzip",
	"mke2fs":             "e2fsprogs",
	"pvs":                "lvm2",
	"lvs":                "lvm2",
	"mkfs.ext2":          "e2fsprogs",
	"mkfs.ext3":          "e2fsprogs",
	"mkfs.ext4":          "e2fsprogs",
	"e2fsck":             "e2fsprogs",
	"dumpe2fs":           "e2fsprogs",
	"mkfs.xfs":           "xfsprogs",
	"mkfs.btrfs":         "btrfs-progs",
	"mkfs.vfat":          "dosfstools",
	"mcopy":              "mtools",
	"mmd":                "mtools",
	"mksquashfs":         "squashfs-tools",
	"xorriso":            "xorriso",
	"qemu-img":           "qemu-utils",
	"grub-mkimage":       "grub-common",
	"pvcreate":           "lvm2",
	"vgcreate":           "lvm2",
	"lvcreate":           "lvm2",
	"qemu-system-x86_64": "qemu-system-x86",
}

// hostTools collects the tools of every step into the plan's list, sorted
// by program, each with the titles of the steps that use it.
func hostTools(steps []plan.Step) []plan.HostTool {
	users := map[string][]string{}
	for _, s := range steps {
		for _, t := range s.Tools {
			users[t] = append(users[t], s.Title)
		}
	}
	out := make([]plan.HostTool, 0, len(users))
	for prog, titles := range users {
		pkg := toolPackages[prog]
		if pkg == "" {
			pkg = "?"
		}
		out = append(out, plan.HostTool{Program: prog, Package: pkg, Steps: titles})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Program < out[j].Program })
	return out
}
