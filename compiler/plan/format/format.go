// Package format is the one table of output formats: what each is made
// from, the host programs that write it, its file extension and the
// Dibfile options it takes. The schema's enum, the Dibfile checks, the
// plan's host tools, the runtime's dispatch and the documentation all come
// from it (TestOutputFormatTable in cmd/dib fails when one disagrees).
//
// It imports nothing, so spec, the compiler and the runtime can all read
// it.
package format

// Source is what an output is made from.
type Source string

const (
	// Tree formats pack the root tree (tar, squashfs, …).
	Tree Source = "tree"
	// Disk formats convert the assembled disk image (raw, qcow2, …): a
	// plan with one of them partitions a disk.
	Disk Source = "disk"
	// Element formats are written by an element's hooks (Format.Element):
	// asking for the output adds the element, the element in a build adds
	// the output, and dib checks and lists the file the element wrote.
	Element Source = "element"
)

// The Dibfile keys of an outputs item besides format.
const (
	OptCompress       = "compress"
	OptQemuImgOptions = "qemu-img-options"
	OptSubformat      = "subformat"
	OptTarget         = "target"
)

// Format is one output format.
type Format struct {
	// Name is DIB's -t name.
	Name   string
	Source Source
	// Ext is the file extension: the output is NAME.Ext (DIB names
	// squashfs NAME.squash; docker, which DIB imports into a daemon, is a
	// docker-load archive here).
	Ext string
	// Tools are the host programs writing it.
	Tools []string
	// Options are the keys of an outputs item the format takes.
	Options []string
	// QemuImg is qemu-img's -O name when qemu-img convert writes the
	// format (for qcow2 only when qemu-img-options are given: dib writes
	// qcow2 itself otherwise).
	QemuImg string
	// QemuImgOptions are the creation options qemu-img convert -o knows
	// for the format (qemu-img create -f FORMAT -o help).
	QemuImgOptions []string
	// Subformats are the values of the subformat option.
	Subformats []string
	// Element is the element writing an Element-source format.
	Element string
}

// All returns the formats in the order the documentation lists them.
func All() []Format {
	qemuImg := []string{"qemu-img"}
	return []Format{
		{Name: "qcow2", Source: Disk, Ext: "qcow2", Options: []string{OptCompress, OptQemuImgOptions}, QemuImg: "qcow2",
			QemuImgOptions: []string{"backing_file", "backing_fmt", "cluster_size", "compat", "compression_type", "data_file", "data_file_raw", "encrypt.format", "extended_l2", "extent_size_hint", "lazy_refcounts", "preallocation", "refcount_bits"}},
		// raw takes the assembled file by rename; dib copies it (keeping
		// holes, runtime/directio) when the output directory is on another
		// filesystem: no host tool.
		{Name: "raw", Source: Disk, Ext: "raw"},
		{Name: "vhd", Source: Disk, Ext: "vhd", Tools: qemuImg, Options: []string{OptQemuImgOptions, OptSubformat}, QemuImg: "vpc",
			QemuImgOptions: []string{"force_size", "preallocation", "subformat"}, Subformats: []string{"dynamic", "fixed"}},
		{Name: "vhdx", Source: Disk, Ext: "vhdx", Tools: qemuImg, Options: []string{OptQemuImgOptions, OptSubformat}, QemuImg: "vhdx",
			QemuImgOptions: []string{"block_size", "block_state_zero", "log_size", "subformat"}, Subformats: []string{"dynamic", "fixed"}},
		{Name: "vmdk", Source: Disk, Ext: "vmdk", Tools: qemuImg, Options: []string{OptQemuImgOptions, OptSubformat}, QemuImg: "vmdk",
			QemuImgOptions: []string{"adapter_type", "backing_file", "compat6", "hwversion", "subformat", "toolsversion", "zeroed_grain"},
			Subformats:     []string{"monolithicSparse", "monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat", "streamOptimized"}},
		{Name: "vdi", Source: Disk, Ext: "vdi", Tools: qemuImg, Options: []string{OptQemuImgOptions}, QemuImg: "vdi",
			QemuImgOptions: []string{"preallocation", "static"}},
		{Name: "tar", Source: Tree, Ext: "tar", Tools: []string{"tar"}},
		{Name: "tgz", Source: Tree, Ext: "tgz", Tools: []string{"tar", "gzip"}},
		{Name: "squashfs", Source: Tree, Ext: "squash", Tools: []string{"mksquashfs"}},
		{Name: "docker", Source: Tree, Ext: "docker.tar", Tools: []string{"tar"}, Options: []string{OptTarget}},
		{Name: "aci", Source: Tree, Ext: "aci", Tools: []string{"tar"}},
		// The iso element's cleanup.d: a hybrid BIOS/UEFI ISO of the
		// kernel and initramfs (xorriso; the EFI image with mtools).
		{Name: "iso", Source: Element, Ext: "iso", Tools: []string{"xorriso", "mkfs.vfat", "mmd", "mcopy"}, Element: "iso"},
	}
}

// Names returns the format names in table order.
func Names() []string {
	var out []string
	for _, f := range All() {
		out = append(out, f.Name)
	}
	return out
}

// Lookup returns the format named name.
func Lookup(name string) (Format, bool) {
	for _, f := range All() {
		if f.Name == name {
			return f, true
		}
	}
	return Format{}, false
}

// IsDisk reports whether name is a format made from the disk image.
func IsDisk(name string) bool {
	f, ok := Lookup(name)
	return ok && f.Source == Disk
}

// Takes reports whether the format takes the outputs-item key opt.
func (f Format) Takes(opt string) bool {
	for _, o := range f.Options {
		if o == opt {
			return true
		}
	}
	return false
}

// HostTools returns the programs writing the format: its Tools, and
// qemu-img when qemu-img-options are given to a format dib otherwise
// writes itself (qcow2).
func (f Format) HostTools(qemuImgOptions bool) []string {
	tools := append([]string(nil), f.Tools...)
	if qemuImgOptions && f.QemuImg != "" {
		for _, t := range tools {
			if t == "qemu-img" {
				return tools
			}
		}
		tools = append(tools, "qemu-img")
	}
	return tools
}
