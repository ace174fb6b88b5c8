package layout

// Template is a block-device layout before the image size is known: DIB's
// node graph with what each plugin read from the configuration, and the
// order DIB creates the nodes in. Resolve computes the Layout from it and
// an image size, so the runtime lays the disk out again once it has
// measured the tree without reading the configuration. The compiler
// (compiler/blockdev) makes it, with DIB's errors: nothing else parses the
// block-device configuration.
//
// A Template is closed: every value Resolve reads is a typed field here.
type Template struct {
	// Seed makes the GUIDs and MBR disk IDs unique to an image (the image
	// name); the same seed gives the same values.
	Seed string `json:"seed"`
	// Nodes are the graph nodes in construction (config) order.
	Nodes []TemplateNode `json:"nodes"`
	// Tables are the `partitioning` entries in config order; their
	// partitions are nodes too.
	Tables []TableTemplate `json:"tables,omitempty"`
	// Order is the creation order (DIB's topological sort of the graph).
	Order []string `json:"order"`
	// GetVal are the getval values, which do not depend on the size.
	GetVal GetVal `json:"getval"`
}

// TemplateNode is one graph node. Exactly one of the pointers is set,
// except for the PV, VG and LV nodes, which their LVM node creates.
type TemplateNode struct {
	Name   string `json:"name"`
	Plugin string `json:"plugin"`
	Kind   string `json:"kind"` // one of the Kind constants
	// Path is the JSON pointer of the node's entry in the configuration;
	// Resolve's diagnostics carry it.
	Path string `json:"path,omitempty"`

	Loop  *LoopTemplate  `json:"local_loop,omitempty"`
	Table string         `json:"table,omitempty"` // on a partition node: its table's name
	LVM   *LVMTemplate   `json:"lvm,omitempty"`
	Mkfs  *MkfsTemplate  `json:"mkfs,omitempty"`
	Mount *MountTemplate `json:"mount,omitempty"`
	Fstab *FstabTemplate `json:"fstab,omitempty"`
}

// LoopTemplate is a local_loop image.
type LoopTemplate struct {
	// SizeBytes is the config's size; 0 means the image size.
	SizeBytes  int64  `json:"size_bytes,omitempty"`
	Directory  string `json:"directory,omitempty"`
	SectorSize int    `json:"sector_size"`
}

// TableTemplate is one `partitioning` entry.
type TableTemplate struct {
	Name       string              `json:"name"`
	Base       string              `json:"base"`
	Label      string              `json:"label"` // LabelMBR or LabelGPT
	AlignBytes int64               `json:"align_bytes"`
	Path       string              `json:"path,omitempty"`
	Partitions []PartitionTemplate `json:"partitions"`
}

// PartitionTemplate is one partition of a table.
type PartitionTemplate struct {
	Name    string   `json:"name"`
	Flags   []string `json:"flags,omitempty"`
	Boot    bool     `json:"boot,omitempty"`
	Primary bool     `json:"primary,omitempty"`
	Size    Size     `json:"size"`
	// MBRType is the MBR type as parsed; MBRTypeBad is set when it does not
	// fit in a byte (DIB fails when it writes the table).
	MBRType    int64  `json:"mbr_type,omitempty"`
	MBRTypeBad bool   `json:"mbr_type_bad,omitempty"`
	GPTType    string `json:"gpt_type,omitempty"`
	Path       string `json:"path,omitempty"`
}

// LVMTemplate is one `lvm` entry.
type LVMTemplate struct {
	PVs []PVTemplate `json:"pvs"`
	VGs []VGTemplate `json:"vgs"`
	LVs []LVTemplate `json:"lvs"`
}

// PVTemplate is an LVM physical volume.
type PVTemplate struct {
	Name    string   `json:"name"`
	Base    string   `json:"base"`
	Options []string `json:"options,omitempty"`
}

// VGTemplate is an LVM volume group.
type VGTemplate struct {
	Name    string   `json:"name"`
	PVs     []string `json:"pvs"`
	Options []string `json:"options,omitempty"`
}

// LVTemplate is an LVM logical volume: Size when the config gives one,
// else Extents (lvcreate -l syntax, as written).
type LVTemplate struct {
	Name     string   `json:"name"`
	VG       string   `json:"vg"`
	Options  []string `json:"options,omitempty"`
	Size     *Size    `json:"size,omitempty"`
	Extents  string   `json:"extents,omitempty"`
	Type     string   `json:"type,omitempty"`
	ThinPool string   `json:"thin_pool,omitempty"`
	Path     string   `json:"path,omitempty"`
}

// MkfsTemplate is a filesystem with its final label and UUID.
type MkfsTemplate struct {
	Base  string   `json:"base"`
	Type  string   `json:"type"`
	Label string   `json:"label"`
	Opts  []string `json:"opts,omitempty"`
	UUID  string   `json:"uuid"`
}

// MountTemplate is a mount node.
type MountTemplate struct {
	Base       string `json:"base"`
	MountPoint string `json:"mount_point"`
}

// FstabTemplate is an fstab node.
type FstabTemplate struct {
	Base       string `json:"base"`
	Options    string `json:"options"`
	DumpFreq   int64  `json:"dump_freq"`
	FsckPassno int64  `json:"fsck_passno"`
}
