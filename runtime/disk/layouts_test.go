package disk

import (
	"fmt"
	"sort"

	"github.com/dibuild/dib/compiler/plan/layout"
)

// Test layouts, built the way compiler/blockdev computes them (1 MiB
// alignment, GPT usable range 34..N-34, deterministic GUIDs and UUIDs).

const mib = 1 << 20

var gptTypes = map[string]string{
	"8300": "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
	"EF00": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
	"EF02": "21686148-6449-6E6F-744E-656564454649",
	"8E00": "E6D6D379-F507-44C2-A23C-238F2A3DF928",
	"8200": "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F",
}

type tpart struct {
	name string
	mib  int64  // 0: rest of the disk
	typ  string // GPT code, or MBR type as hex for MBR
	boot bool
	kind string // primary (default) or logical (MBR)
}

type tfs struct {
	node, base, typ, label, mp string
	opts                       []string
}

func uuidN(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

func gptLayout(sizeMiB int64, parts []tpart, fss []tfs) *layout.Layout {
	l := &layout.Layout{Images: []layout.Image{{Node: "image0", FileName: "image0.raw", SizeBytes: sizeMiB * mib, SectorSize: 512}}}
	t := layout.PartitionTable{Name: "partitioning_image0", Base: "image0", Label: layout.LabelGPT, SectorSize: 512,
		DiskSizeBytes: sizeMiB * mib, DiskSectors: sizeMiB * mib / 512, AlignBytes: mib,
		FirstUsableLBA: 34, LastUsableLBA: sizeMiB*mib/512 - 34, DiskGUID: "11111111-2222-4333-8444-555555555555"}
	start := int64(2048)
	for i, p := range parts {
		size := p.mib * mib / 512
		if p.mib == 0 {
			size = (t.LastUsableLBA+1)/2048*2048 - start
		}
		t.Partitions = append(t.Partitions, layout.Partition{
			Node: p.name, Number: i + 1, Kind: layout.KindPrimary, Start: start, Size: size,
			StartBytes: start * 512, SizeBytes: size * 512,
			GPTTypeCode: p.typ, GPTType: gptTypes[p.typ], GPTName: p.name,
			GPTGUID: fmt.Sprintf("AAAAAAAA-BBBB-4CCC-8DDD-%012d", i+1), DeviceNode: fmt.Sprintf("image0%d", i+1),
		})
		start += size
	}
	l.PartitionTables = []layout.PartitionTable{t}
	addFS(l, fss)
	return l
}

func mbrLayout(sizeMiB int64, parts []tpart, fss []tfs) *layout.Layout {
	l := &layout.Layout{Images: []layout.Image{{Node: "image0", FileName: "image0.raw", SizeBytes: sizeMiB * mib, SectorSize: 512}}}
	disk := sizeMiB * mib / 512
	t := layout.PartitionTable{Name: "partitioning_image0", Base: "image0", Label: layout.LabelMBR, SectorSize: 512,
		DiskSizeBytes: sizeMiB * mib, DiskSectors: disk, AlignBytes: mib, MBRDiskID: 0x0d1b0d1b,
		MBRSignatures: []int64{0}}
	chs := [3]uint8{0xfe, 0xff, 0xff}
	next := int64(2048)
	slot := 0
	var lastEBR int64
	logicalNum := 5
	for _, p := range parts {
		size := p.mib * mib / 512
		var mbrType uint8
		fmt.Sscanf(p.typ, "%x", &mbrType)
		if p.kind != layout.KindLogical {
			if p.mib == 0 {
				size = disk - next
			}
			t.Partitions = append(t.Partitions, layout.Partition{Node: p.name, Number: slot + 1, Kind: layout.KindPrimary,
				Start: next, Size: size, StartBytes: next * 512, SizeBytes: size * 512, Boot: p.boot, MBRType: mbrType,
				DeviceNode: fmt.Sprintf("image0%d", slot+1)})
			t.MBRRecords = append(t.MBRRecords, layout.MBRRecord{Sector: 0, Slot: slot, Boot: p.boot, Type: mbrType,
				CHSStart: chs, CHSEnd: chs, LBAStart: uint32(next), LBASize: uint32(size)})
			slot++
			next += size
			continue
		}
		if t.Extended == nil {
			t.Extended = &layout.Extended{Number: slot + 1, Start: next, Size: disk - next, StartBytes: next * 512,
				SizeBytes: (disk - next) * 512, Type: 0x0f, DeviceNode: fmt.Sprintf("image0%d", slot+1)}
			t.MBRRecords = append(t.MBRRecords, layout.MBRRecord{Sector: 0, Slot: slot, Type: 0x0f,
				CHSStart: chs, CHSEnd: chs, LBAStart: uint32(next), LBASize: uint32(disk - next)})
			slot++
		}
		ebr := next
		start := ebr + 2048
		if p.mib == 0 {
			size = disk - start
		}
		if lastEBR != 0 { // link from the previous EBR
			t.MBRRecords = append(t.MBRRecords, layout.MBRRecord{Sector: lastEBR, Slot: 1, Type: 0x05,
				CHSStart: chs, CHSEnd: chs, LBAStart: uint32(ebr - t.Extended.Start), LBASize: uint32(start + size - ebr)})
		}
		t.MBRRecords = append(t.MBRRecords, layout.MBRRecord{Sector: ebr, Slot: 0, Boot: p.boot, Type: mbrType,
			CHSStart: chs, CHSEnd: chs, LBAStart: 2048, LBASize: uint32(size)})
		t.MBRSignatures = append(t.MBRSignatures, ebr)
		t.Partitions = append(t.Partitions, layout.Partition{Node: p.name, Number: logicalNum, Kind: layout.KindLogical,
			Start: start, Size: size, StartBytes: start * 512, SizeBytes: size * 512, MBRType: mbrType, EBRSector: ebr,
			DeviceNode: fmt.Sprintf("image0%d", logicalNum)})
		logicalNum++
		lastEBR = ebr
		next = start + size
	}
	l.PartitionTables = []layout.PartitionTable{t}
	addFS(l, fss)
	return l
}

func addFS(l *layout.Layout, fss []tfs) {
	for i, f := range fss {
		fs := layout.Filesystem{Node: f.node, Base: f.base, Type: f.typ, Label: f.label, UUID: uuidN(i + 1),
			Opts: f.opts, Root: f.mp == "/", MountPoint: f.mp}
		if f.typ == "vfat" {
			fs.VolumeID = fmt.Sprintf("%08X", i+1)
		}
		l.Filesystems = append(l.Filesystems, fs)
	}
	var mps []layout.Filesystem
	for _, f := range l.Filesystems {
		if f.MountPoint != "" {
			mps = append(mps, f)
		}
	}
	sort.Slice(mps, func(i, j int) bool { return mps[i].MountPoint < mps[j].MountPoint })
	for i, f := range mps {
		l.Mounts = append(l.Mounts, layout.Mount{Node: "mount_" + f.Node, MountPoint: f.MountPoint, Filesystem: f.Node, Order: i})
	}
}

// efiLayout is DIB's block-device-efi shape: ESP, BIOS boot, root.
func efiLayout(sizeMiB int64) *layout.Layout {
	return gptLayout(sizeMiB, []tpart{{"ESP", 64, "EF00", false, ""}, {"BSP", 8, "EF02", false, ""}, {"root", 0, "8300", false, ""}},
		[]tfs{{"mkfs_ESP", "ESP", "vfat", "ESP", "/boot/efi", nil}, {"mkfs_root", "root", "ext4", "cloudimg-rootfs", "/", []string{"-i", "4096", "-J", "size=64"}}})
}

// mbrRootLayout is DIB's block-device-mbr shape: one bootable root.
func mbrRootLayout(sizeMiB int64) *layout.Layout {
	return mbrLayout(sizeMiB, []tpart{{"root", 0, "83", true, layout.KindPrimary}},
		[]tfs{{"mkfs_root", "root", "ext4", "cloudimg-rootfs", "/", []string{"-i", "4096", "-J", "size=64"}}})
}

// lvmLayout is a GPT disk with a boot partition and LVM root/var LVs.
func lvmLayout(sizeMiB int64) *layout.Layout {
	l := gptLayout(sizeMiB, []tpart{{"BSP", 8, "EF02", false, ""}, {"boot", 128, "8300", false, ""}, {"lvm", 0, "8E00", false, ""}},
		[]tfs{{"mkfs_boot", "boot", "ext4", "boot", "/boot", nil}, {"mkfs_root", "lv_root", "ext4", "cloudimg-rootfs", "/", nil},
			{"mkfs_var", "lv_var", "xfs", "var", "/var", nil}})
	l.LVM = []layout.LVM{{Node: "lvm_lvm",
		PVs: []layout.PV{{Node: "pv", Base: "lvm"}},
		VGs: []layout.VG{{Node: "vg", PVs: []string{"pv"}, ExtentBytes: 4 * mib}},
		LVs: []layout.LV{{Node: "lv_root", VG: "vg", SizeBytes: 200 * mib, MapperName: "vg-lv_root"},
			{Node: "lv_var", VG: "vg", Extents: "100%FREE", MapperName: "vg-lv_var"}}}}
	return l
}

// mbrLogicalLayout has a primary, an extended container and three logical
// partitions (one swap).
func mbrLogicalLayout() *layout.Layout {
	return mbrLayout(512, []tpart{
		{"boot", 64, "83", true, layout.KindPrimary},
		{"root", 200, "83", false, layout.KindLogical},
		{"swap", 64, "82", false, layout.KindLogical},
		{"data", 0, "83", false, layout.KindLogical},
	}, []tfs{
		{"mkfs_boot", "boot", "ext2", "boot", "/boot", nil},
		{"mkfs_root", "root", "ext4", "cloudimg-rootfs", "/", nil},
		{"mkfs_swap", "swap", "swap", "swap", "none", nil},
		{"mkfs_data", "data", "ext3", "data", "/var", nil},
	})
}
