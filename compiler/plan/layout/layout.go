// Package layout is the computed disk layout of one image: the data the
// runtime needs to build the disk byte for byte without reading the
// block-device configuration again.
//
// It is part of the plan model (compiler/plan carries a *Layout and its
// *Template), so it imports only the standard library and spec/diag. The
// compiler (compiler/blockdev) turns a DIB block-device config into a
// Template; Resolve, a pure function, computes the Layout from it and an
// image size, for the plan's preview and again in the runtime once the
// tree is measured. The runtime (disk assembly) reads the Layout.
//
// Conventions used throughout:
//
//   - Every object that is a node of DIB's block-device graph is named by its
//     node name (Node fields); references between objects use node names.
//   - Sizes are in bytes (…Bytes) and, for partitions, also in sectors of the
//     table's sector size (Start, Size). The byte values always equal the
//     sector values times SectorSize.
//   - Slices are in DIB's order (config order unless documented otherwise).
//   - Fields are only ever added, never renamed or removed.
package layout

// Layout is the whole computed block-device layout.
type Layout struct {
	// Images are the disk image files (DIB's local_loop), in config order.
	Images []Image `json:"images"`
	// PartitionTables are the partition tables, one per `partitioning`
	// entry, in config order.
	PartitionTables []PartitionTable `json:"partition_tables,omitempty"`
	// LVM holds the logical volume setups (DIB's `lvm` entries), in config
	// order.
	LVM []LVM `json:"lvm,omitempty"`
	// Filesystems are the mkfs nodes, in config order (the order DIB
	// constructs them, which is also the order its uuid4 calls happen).
	Filesystems []Filesystem `json:"filesystems,omitempty"`
	// Mounts are the mount nodes in mount order: plain string order of the
	// mount point (DIB's sorted_mount_points). Unmount in reverse.
	Mounts []Mount `json:"mounts,omitempty"`
	// Fstab are the /etc/fstab entries in mount order, as DIB's
	// cmd_writefstab writes them.
	Fstab []FstabEntry `json:"fstab,omitempty"`
	// CreationOrder is the order DIB creates the nodes in (its topological
	// sort of the graph). Umount and cleanup walk CleanupOrder, its reverse.
	CreationOrder []Step   `json:"creation_order"`
	CleanupOrder  []string `json:"cleanup_order"`
	// GetVal are the values DIB's `dib-block-device getval` returns that do
	// not depend on run-time device paths.
	GetVal GetVal `json:"getval"`
}

// Node kinds used in Step.Kind.
const (
	KindLocalLoop = "local_loop" // an Image
	KindPartition = "partition"  // a Partition
	KindLVM       = "lvm"        // the LVM driver node: creates all PVs, VGs and LVs of one LVM
	KindPV        = "pv"         // a PV (placeholder, created by its LVM node)
	KindVG        = "vg"         // a VG (placeholder, created by its LVM node)
	KindLV        = "lv"         // an LV (placeholder, created by its LVM node)
	KindMkfs      = "mkfs"       // a Filesystem
	KindMount     = "mount"      // a Mount
	KindFstab     = "fstab"      // an FstabEntry
)

// Step is one node of the creation order.
type Step struct {
	Node string `json:"node"`
	Kind string `json:"kind"` // one of the Kind constants
	// Plugin is DIB's plugin name of the node (local_loop, partitioning,
	// lvm, mkfs, mount, fstab).
	Plugin string `json:"plugin"`
}

// Image is one disk image file (DIB's local_loop node).
type Image struct {
	Node string `json:"node"`
	// FileName is the file DIB creates: "<node>.raw".
	FileName string `json:"file_name"`
	// Directory is the config's `directory`; empty means the build's image
	// directory.
	Directory string `json:"directory,omitempty"`
	SizeBytes int64  `json:"size_bytes"`
	// SectorSize is the logical sector size of the loop device (DIB's
	// local_loop `block_size`, `losetup --sector-size`): 512 or 4096.
	SectorSize int `json:"sector_size"`
}

// Partition table labels.
const (
	LabelMBR = "mbr"
	LabelGPT = "gpt"
)

// PartitionTable is one partition table written on an image.
type PartitionTable struct {
	// Name is the name of the `partitioning` config entry (e.g.
	// "partitioning_image0"); it is not a graph node in DIB.
	Name string `json:"name"`
	// Base is the node of the device the table is written on (an Image).
	Base  string `json:"base"`
	Label string `json:"label"` // LabelMBR or LabelGPT
	// SectorSize is the sector size the table is written in. DIB's own MBR
	// writer always uses 512.
	SectorSize    int   `json:"sector_size"`
	DiskSizeBytes int64 `json:"disk_size_bytes"`
	DiskSectors   int64 `json:"disk_sectors"`

	// AlignBytes is the MBR partition alignment (DIB default 1 MiB, config
	// `align`). GPT partitions are aligned by sgdisk to 1 MiB.
	AlignBytes int64 `json:"align_bytes"`

	// FirstUsableLBA and LastUsableLBA are the GPT header's usable range
	// (128 entries of 128 bytes: first = 2 + 16384/SectorSize, last =
	// DiskSectors - first). Zero for MBR.
	FirstUsableLBA int64 `json:"first_usable_lba,omitempty"`
	LastUsableLBA  int64 `json:"last_usable_lba,omitempty"`
	// DiskGUID is the GPT disk GUID (deterministic, derived from the seed).
	DiskGUID string `json:"disk_guid,omitempty"`

	// MBRDiskID is the 32-bit MBR disk signature at byte 440
	// (deterministic; DIB uses a random one).
	MBRDiskID uint32 `json:"mbr_disk_id,omitempty"`

	// Partitions are the partitions in number order: primaries first, then
	// logical ones (MBR numbers 5, 6, …). The MBR extended container is not
	// in this list, see Extended.
	Partitions []Partition `json:"partitions"`
	// Extended is the MBR extended partition that holds the logical
	// partitions, nil when there are none.
	Extended *Extended `json:"extended,omitempty"`

	// MBRRecords are the exact 16-byte MBR/EBR entries DIB's MBR writer
	// writes, in write order; together with MBRDiskID and the 0x55AA
	// signature at byte 510 of every sector in MBRSignatures they are the
	// whole MBR table, byte for byte (CHS values included). Empty for GPT.
	MBRRecords    []MBRRecord `json:"mbr_records,omitempty"`
	MBRSignatures []int64     `json:"mbr_signatures,omitempty"`
}

// Partition kinds (MBR); GPT partitions are all KindPrimary.
const (
	KindPrimary = "primary"
	KindLogical = "logical"
)

// Partition is one partition. Start and Size are in sectors of the table's
// SectorSize; StartBytes and SizeBytes are the same in bytes.
type Partition struct {
	// Node is the partition's graph node name (the config `name`).
	Node string `json:"node"`
	// Number is the partition number (1-based; MBR logical ones from 5).
	Number int `json:"number"`
	// Kind is KindPrimary or KindLogical.
	Kind  string `json:"kind"`
	Start int64  `json:"start"`
	Size  int64  `json:"size"`

	StartBytes int64 `json:"start_bytes"`
	SizeBytes  int64 `json:"size_bytes"`

	// Boot is the MBR bootable flag (0x80) from `flags: [boot]`. DIB does
	// not set any GPT attribute for it.
	Boot bool `json:"boot,omitempty"`
	// Flags are the config flags as written (boot, primary).
	Flags []string `json:"flags,omitempty"`

	// MBRType is the MBR partition type byte (config `type` parsed as hex,
	// default 0x83).
	MBRType uint8 `json:"mbr_type,omitempty"`
	// EBRSector is the absolute sector of the EBR of a logical partition.
	EBRSector int64 `json:"ebr_sector,omitempty"`

	// GPTTypeCode is the type as given to sgdisk (config `type`, default
	// "8300"); GPTType is the partition type GUID it means (upper case).
	GPTTypeCode string `json:"gpt_type_code,omitempty"`
	GPTType     string `json:"gpt_type,omitempty"`
	// GPTName is the GPT partition name (sgdisk -c): the node name.
	GPTName string `json:"gpt_name,omitempty"`
	// GPTGUID is the unique partition GUID (deterministic).
	GPTGUID string `json:"gpt_guid,omitempty"`
	// GPTAttributes are the GPT attribute bits (sgdisk -A); DIB sets none.
	GPTAttributes uint64 `json:"gpt_attributes,omitempty"`

	// DeviceNode is how a partition table reader names it: the image node
	// followed by the number ("image01"), as `sfdisk --json` on the image
	// file reports it with the directory removed.
	DeviceNode string `json:"device_node"`
}

// Extended is the MBR extended partition (type 0x0f) that spans from the
// first EBR to the end of the disk.
type Extended struct {
	Number     int    `json:"number"`
	Start      int64  `json:"start"`
	Size       int64  `json:"size"`
	StartBytes int64  `json:"start_bytes"`
	SizeBytes  int64  `json:"size_bytes"`
	Type       uint8  `json:"type"`
	DeviceNode string `json:"device_node"`
}

// MBRRecord is one 16-byte partition entry at byte 446+16*Slot of sector
// Sector. LBAStart and LBASize are the values as written (relative to the
// EBR or the extended partition for EBR entries, as DIB writes them).
type MBRRecord struct {
	Sector   int64    `json:"sector"`
	Slot     int      `json:"slot"`
	Boot     bool     `json:"boot,omitempty"` // 0x80 when set
	Type     uint8    `json:"type"`
	CHSStart [3]uint8 `json:"chs_start"` // encoded head, sector|cyl-high, cyl-low
	CHSEnd   [3]uint8 `json:"chs_end"`
	LBAStart uint32   `json:"lba_start"`
	LBASize  uint32   `json:"lba_size"`
}

// LVM is one `lvm` config entry: the driver node and its PVs, VGs and LVs.
type LVM struct {
	Node string `json:"node"`
	PVs  []PV   `json:"pvs"`
	VGs  []VG   `json:"vgs"`
	LVs  []LV   `json:"lvs"`
}

// PV is an LVM physical volume made on a device node (`pvcreate DEV OPTS`).
type PV struct {
	Node string `json:"node"`
	// Base is the node of the device (usually a partition).
	Base    string   `json:"base"`
	Options []string `json:"options,omitempty"`
	// SizeBytes is the size of the underlying device.
	SizeBytes int64 `json:"size_bytes"`
}

// VG is an LVM volume group (`vgcreate NAME PVDEVS… OPTS`).
type VG struct {
	Node    string   `json:"node"`
	PVs     []string `json:"pvs"`
	Options []string `json:"options,omitempty"`
	// ExtentBytes is the physical extent size (LVM's default 4 MiB, which
	// DIB assumes when it rounds sizes).
	ExtentBytes int64 `json:"extent_bytes"`
	// Extents is the estimated number of extents: per PV,
	// (size - 1 MiB metadata area) / ExtentBytes, summed.
	Extents int64 `json:"extents"`
}

// LV types.
const (
	LVThinPool = "thin-pool"
	LVThin     = "thin"
)

// LV is an LVM logical volume. Exactly one of SizeBytes and Extents is the
// request: `lvcreate --name NODE [--type T] [--thin-pool P] (-L|-V) <SizeBytes>B`
// or `-l <Extents>`, then OPTS, then the VG.
type LV struct {
	Node     string `json:"node"`
	VG       string `json:"vg"`
	Type     string `json:"type,omitempty"` // "", LVThinPool or LVThin
	ThinPool string `json:"thin_pool,omitempty"`
	// Size is the config size as written; SizeBytes is it in bytes rounded
	// down to the 4 MiB extent, as DIB passes it (-L, or -V for thin).
	Size      string `json:"size,omitempty"`
	SizeBytes int64  `json:"size_bytes,omitempty"`
	// Extents is the config extents as written (lvcreate -l syntax, e.g.
	// "23%VG"); ExtentCount is our estimate of the extents it yields
	// (rounded down) and EstimatedBytes the size in bytes of either form.
	Extents        string   `json:"extents,omitempty"`
	ExtentCount    int64    `json:"extent_count,omitempty"`
	EstimatedBytes int64    `json:"estimated_bytes"`
	Options        []string `json:"options,omitempty"`
	// MapperName is the device-mapper name "<vg>-<lv>" (dashes in either
	// name doubled, as device-mapper does).
	MapperName string `json:"mapper_name"`
}

// Filesystem is one mkfs node.
type Filesystem struct {
	Node string `json:"node"`
	// Base is the node of the device the filesystem is made on (a
	// partition, an LV or an image).
	Base string `json:"base"`
	Type string `json:"type"` // ext2/3/4, xfs, vfat, fat, swap, btrfs, …
	// Label is the final label: config `label`, else the node name; upper
	// case for vfat/fat. mkfs_root gets root-label (default
	// "cloudimg-rootfs").
	Label string `json:"label"`
	UUID  string `json:"uuid"`
	// VolumeID is the FAT volume serial (mkfs.vfat -i), 8 hex digits taken
	// from the UUID, so FAT filesystems are deterministic too. Empty for
	// other types.
	VolumeID string `json:"volume_id,omitempty"`
	// Opts are the extra mkfs options (config `opts` split on spaces).
	Opts []string `json:"opts,omitempty"`
	// Command is the mkfs argv DIB runs without its device argument, e.g.
	// ["mkfs","-t","ext4","-i","4096","-L","cloudimg-rootfs","-U",UUID,"-q"]
	// (["mkswap","-L",…] for swap).
	Command []string `json:"command"`
	// Root is true for the filesystem mounted at "/".
	Root bool `json:"root,omitempty"`
	// MountPoint is where it is mounted ("" when it has no mount node).
	MountPoint string `json:"mount_point,omitempty"`
}

// Mount is one mount node. MountPoint "none" is swap (not mounted).
type Mount struct {
	Node       string `json:"node"`
	MountPoint string `json:"mount_point"`
	Filesystem string `json:"filesystem"` // the mkfs node
	// Order is the 0-based position in mount order.
	Order int `json:"order"`
}

// FstabEntry is one /etc/fstab line.
type FstabEntry struct {
	Node       string `json:"node"`
	Mount      string `json:"mount"`      // the mount node
	Filesystem string `json:"filesystem"` // the mkfs node
	// Spec is "LABEL=<label>" (DIB uses UUID= only without a label, which
	// does not happen because the label defaults to the node name).
	Spec       string `json:"spec"`
	MountPoint string `json:"mount_point"`
	FSType     string `json:"fstype"`
	Options    string `json:"options"`
	DumpFreq   int    `json:"dump_freq"`
	FsckPassno int    `json:"fsck_passno"`
	// Line is the entry exactly as DIB writes it (without newline).
	Line string `json:"line"`
}

// GetVal are the layout values of `dib-block-device getval`. The run-time
// values (image-block-device(s), image-path) are device paths known only
// when the disk is assembled and are not here.
type GetVal struct {
	RootLabel   string `json:"root-label"`
	RootFSType  string `json:"root-fstype"`
	BootLabel   string `json:"boot-label"`
	MountPoints string `json:"mount-points"` // config order, joined by "|"
	// Errors holds, per symbol, the error DIB's getval raises instead of a
	// value (e.g. root-label when the root mkfs is not named mkfs_root and
	// has no label: disk-image-create stops there).
	Errors map[string]string `json:"errors,omitempty"`
}

// Image returns the image with node name n, or nil.
func (l *Layout) Image(n string) *Image {
	for i := range l.Images {
		if l.Images[i].Node == n {
			return &l.Images[i]
		}
	}
	return nil
}

// Filesystem returns the filesystem with node name n, or nil.
func (l *Layout) Filesystem(n string) *Filesystem {
	for i := range l.Filesystems {
		if l.Filesystems[i].Node == n {
			return &l.Filesystems[i]
		}
	}
	return nil
}

// Partition returns the partition with node name n and its table, or nils.
func (l *Layout) Partition(n string) (*PartitionTable, *Partition) {
	for i := range l.PartitionTables {
		t := &l.PartitionTables[i]
		for j := range t.Partitions {
			if t.Partitions[j].Node == n {
				return t, &t.Partitions[j]
			}
		}
	}
	return nil, nil
}

// RootFilesystem returns the filesystem mounted at "/", or nil.
func (l *Layout) RootFilesystem() *Filesystem {
	for i := range l.Filesystems {
		if l.Filesystems[i].Root {
			return &l.Filesystems[i]
		}
	}
	return nil
}

// fsTypes are the filesystems the runtime's disk assembly makes.
var fsTypes = []string{"ext2", "ext3", "ext4", "fat", "swap", "vfat", "xfs"}

// FSTypes returns the filesystem types the runtime can make, sorted.
func FSTypes() []string { return append([]string(nil), fsTypes...) }

// CanMakeFS reports whether the runtime can make a filesystem of type t.
func CanMakeFS(t string) bool {
	for _, x := range fsTypes {
		if x == t {
			return true
		}
	}
	return false
}

// FallbackConfig is the block-device configuration DIB's
// block_device_create_config_file writes when neither
// DIB_BLOCK_DEVICE_CONFIG nor an element gives one: a loop image with the
// root filesystem directly on it.
const FallbackConfig = `- local_loop:
    name: image0
    mkfs:
      name: mkfs_root
      mount:
        mount_point: /
        fstab:
          options: "defaults"
          fsck-passno: 1
`
