package blockdev

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/spec/diag"
)

// Params are the values disk-image-create hands to DIB's block-device
// code, plus what makes our output deterministic.
type Params struct {
	// ImageSize in bytes: the size of every local_loop without a size of
	// its own (DIB's image-size).
	ImageSize int64
	// RootLabel is --root-label; "" means not given, and mkfs_root's label
	// then defaults to "img-rootfs" for xfs, else "cloudimg-rootfs".
	RootLabel string
	// RootFSType is DIB_ROOT_FSTYPE (disk-image-create's default is
	// "ext4"); "" leaves mkfs_root's type to the config.
	RootFSType string
	// RootFSOpts are the extra mkfs options of mkfs_root ("" for none);
	// disk-image-create passes DefaultRootFSOpts.
	RootFSOpts string
	// SectorSize, when not 0, overrides every local_loop's block_size
	// (default 512).
	SectorSize int
	// Seed makes the generated UUIDs, GUIDs and disk IDs unique to an
	// image (use the image name); the same seed gives the same values.
	Seed string
	// UUIDs, when set, generates the UUID of the n-th (1-based) filesystem
	// without a configured uuid, in construction (config) order. DIB calls
	// uuid4 there; the oracle replaced it with a counter.
	UUIDs func(n int, node string) string
}

// Stages of DIB's flow where an error can happen (the oracle's
// error_stage names).
const (
	StageParse  = "config_tree_to_graph"
	StageGraph  = "create_graph"
	StageCreate = "cmd_create"
	StageFstab  = "cmd_writefstab"
)

func (p Params) digest(kind, name string) [32]byte {
	return sha256.Sum256([]byte("dib-blockdev\x00" + kind + "\x00" + p.Seed + "\x00" + name))
}

func (p Params) guid(kind, name string) string {
	h := p.digest(kind, name)
	h[6] = h[6]&0x0f | 0x40 // version 4
	h[8] = h[8]&0x3f | 0x80 // RFC 4122 variant
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16]))
}

func (p Params) uuid(n int, node string) string {
	if p.UUIDs != nil {
		return p.UUIDs(n, node)
	}
	return strings.ToLower(p.guid("uuid", node))
}

func (p Params) diskID(base string) uint32 {
	h := p.digest("mbr-disk-id", base)
	return binary.LittleEndian.Uint32(h[:4])
}

// result is everything one compilation produces; tests look at all of it.
type result struct {
	final  *Config
	layout *layout.Layout
	graph  *Graph
	stage  string // the stage of the first error, "" when none
	diags  diag.Diagnostics
	strict diag.Diagnostics // check.go: what DIB accepts but the build would fail on
}

// Compile computes the disk layout DIB would create from cfg with p. The
// layout is returned even with errors when the failure is in DIB's getval
// only (e.g. a root filesystem without label; disk-image-create stops
// there), otherwise nil on error.
func Compile(cfg *Config, p Params) (*layout.Layout, diag.Diagnostics) {
	r := compile(cfg, p)
	if len(r.strict) > 0 {
		return nil, append(r.diags, r.strict...)
	}
	return r.layout, r.diags
}

// FinalConfig returns cfg after DIB's cmd_init merged the root parameters
// into mkfs_root (type, opts, label).
func FinalConfig(cfg *Config, p Params) *Config {
	c := cfg.clone()
	mergeRoot(c, p)
	return c
}

// mergeRoot is DIB's _merge_into_config: only the mkfs entry named
// mkfs_root gets the root type, options and label, where it has none.
func mergeRoot(c *Config, p Params) {
	for _, e := range c.Entries {
		if e.Plugin != PluginMkfs || e.Name() != "mkfs_root" {
			continue
		}
		v := e.Values
		if !v.Has("type") && p.RootFSType != "" {
			v.Set("type", p.RootFSType)
		}
		if !v.Has("opts") && p.RootFSOpts != "" {
			v.Set("opts", p.RootFSOpts)
		}
		if !v.Has("label") {
			switch {
			case p.RootLabel != "":
				v.Set("label", p.RootLabel)
			case v.vals["type"] == "xfs":
				v.Set("label", "img-rootfs")
			default:
				v.Set("label", "cloudimg-rootfs")
			}
		}
	}
}

func compile(cfg *Config, p Params) result {
	var r result
	if cfg == nil {
		r.stage = StageParse
		r.diags = diag.Diagnostics{diag.Errorf("no block-device configuration")}
		return r
	}
	r.final = FinalConfig(cfg, p)
	gv := getval(r.final)

	b := &builder{p: p, byName: map[string]*node{}, fsLabels: map[string]bool{}}
	fail := func(stage string, d *diag.Diagnostic) result {
		r.stage = stage
		r.diags = append(append(r.diags, b.warnings...), *d)
		r.diags = append(r.diags, getvalDiags(gv)...)
		return r
	}
	if d := b.construct(r.final); d != nil {
		return fail(StageGraph, d)
	}
	// Beyond DIB's checks (check.go): kept apart, so that the layout
	// stays DIB's and Compile refuses it.
	r.strict = b.check()
	g, d := b.link()
	if d != nil {
		return fail(StageGraph, d)
	}
	r.graph = g
	l, stage, d := b.create(g.Order)
	if d != nil {
		return fail(stage, d)
	}
	l.GetVal = gv
	r.layout = l
	r.diags = append(append(r.diags, b.warnings...), getvalDiags(gv)...)
	return r
}

// getvalDiags turns the getval failures that stop disk-image-create into
// errors.
func getvalDiags(gv layout.GetVal) diag.Diagnostics {
	var ds diag.Diagnostics
	for _, k := range []string{"root-label", "root-fstype"} {
		if msg, ok := gv.Errors[k]; ok {
			d := diag.Errorf("dib-block-device getval %s fails: %s; disk-image-create stops there", k, msg)
			d.Hint = "name the root filesystem's mkfs entry mkfs_root, or give it a label and a type"
			ds = append(ds, d)
		}
	}
	return ds
}

// getval is DIB's cmd_getval for the values that do not depend on devices,
// read from the final configuration as DIB reads its config.json.
func getval(c *Config) layout.GetVal {
	var gv layout.GetVal
	fail := func(k, msg string) {
		if gv.Errors == nil {
			gv.Errors = map[string]string{}
		}
		gv.Errors[k] = msg
	}
	var mps []string
	mountAt := func(mp string) *Map {
		for _, e := range c.Entries {
			if e.Plugin == PluginMount {
				if v, ok := e.Values.Get("mount_point"); ok && pyStr(v) == mp {
					return e.Values
				}
			}
		}
		return nil
	}
	mkfsNamed := func(name any) *Map {
		for _, e := range c.Entries {
			if e.Plugin == PluginMkfs && pyStr(e.Values.vals["name"]) == pyStr(name) {
				return e.Values
			}
		}
		return nil
	}
	for _, e := range c.Entries {
		if e.Plugin == PluginMount {
			mps = append(mps, pyStr(e.Values.vals["mount_point"]))
		}
	}
	gv.MountPoints = strings.Join(mps, "|")
	root := mountAt("/")
	var rootFS *Map
	if root != nil {
		rootFS = mkfsNamed(root.vals["base"])
	}
	switch {
	case root == nil:
		fail("root-label", "AssertionError: no mount entry has mount_point /")
		fail("root-fstype", "AssertionError: no mount entry has mount_point /")
	case rootFS == nil:
		fail("root-label", "AssertionError: no mkfs entry is named "+pyStr(root.vals["base"]))
		fail("root-fstype", "AssertionError: no mkfs entry is named "+pyStr(root.vals["base"]))
	default:
		if l, ok := rootFS.Get("label"); ok {
			gv.RootLabel = pyStr(l)
		} else {
			fail("root-label", "KeyError: 'label'")
		}
		if t, ok := rootFS.Get("type"); ok {
			gv.RootFSType = pyStr(t)
		} else {
			fail("root-fstype", "KeyError: 'type'")
		}
	}
	if boot := mountAt("/boot"); boot != nil {
		if fs := mkfsNamed(boot.vals["base"]); fs != nil {
			if l, ok := fs.Get("label"); ok {
				gv.BootLabel = pyStr(l)
			} else {
				gv.BootLabel = pyStr(fs.vals["name"])
			}
		}
	}
	return gv
}

// device is what DIB's state['blockdev'] knows of a created node.
type device struct {
	size       int64
	sectorSize int
}

// create walks the creation order as DIB's cmd_create does and computes
// what each node makes, then the fstab (cmd_writefstab).
func (b *builder) create(order []string) (*layout.Layout, string, *diag.Diagnostic) {
	l := &layout.Layout{}
	devs := map[string]device{}
	filesys := map[string]bool{}
	tables := map[*tableNode]bool{}
	var mountOrder []*node
	fstabByMount := map[string]*node{}
	for _, name := range order {
		n := b.byName[name]
		l.CreationOrder = append(l.CreationOrder, layout.Step{Node: name, Kind: n.kind, Plugin: n.plugin})
		switch {
		case n.loop != nil:
			img := layout.Image{Node: name, FileName: name + ".raw", Directory: n.loop.directory, SizeBytes: n.loop.size, SectorSize: n.loop.sectorSize}
			l.Images = append(l.Images, img)
			devs[name] = device{size: img.SizeBytes, sectorSize: img.SectorSize}
		case n.part != nil:
			t := n.part.table
			if tables[t] {
				continue
			}
			tables[t] = true
			img := l.Image(t.base)
			if img == nil {
				return nil, StageCreate, dsubject(errAt(t.ptr+"/base", "partitioning %s: base %s is not a local_loop image (DIB: KeyError: 'image')", t.name, t.base), t.name)
			}
			var pt *layout.PartitionTable
			var d *diag.Diagnostic
			if t.label == layout.LabelMBR {
				if img.SectorSize != mbrSector {
					b.warnings = append(b.warnings, diag.Warningf("partitioning %s: DIB's MBR writer assumes 512-byte sectors; the image has %d-byte sectors", t.name, img.SectorSize).WithPath(t.ptr))
				}
				pt, d = mbrTable(b, t, img)
			} else {
				pt, d = gptTable(b, t, img)
			}
			if d != nil {
				return nil, StageCreate, d
			}
			l.PartitionTables = append(l.PartitionTables, *pt)
			for _, p := range pt.Partitions {
				devs[p.Node] = device{size: p.SizeBytes, sectorSize: pt.SectorSize}
			}
		case n.lvm != nil:
			lv, d := b.createLVM(n, devs)
			if d != nil {
				return nil, StageCreate, d
			}
			l.LVM = append(l.LVM, *lv)
		case n.fs != nil:
			if _, ok := devs[n.fs.base]; !ok {
				return nil, StageCreate, dsubject(errAt(n.ptr+"/base", "mkfs %s: base %s is not a block device (DIB: KeyError: '%s')", name, n.fs.base, n.fs.base), name)
			}
			fs := makeFilesystem(n.fs)
			l.Filesystems = append(l.Filesystems, fs)
			filesys[name] = true
		case n.mount != nil:
			if !filesys[n.mount.base] {
				return nil, StageCreate, dsubject(errAt(n.ptr+"/base", "mount %s: base %s is not a filesystem (DIB: KeyError: '%s')", name, n.mount.base, n.mount.base), name)
			}
			mountOrder = append(mountOrder, n)
		case n.fstab != nil:
			fstabByMount[n.fstab.base] = n
		}
	}
	for i := len(order) - 1; i >= 0; i-- {
		l.CleanupOrder = append(l.CleanupOrder, order[i])
	}
	// Filesystems in construction (config) order, as DIB's state lists
	// them; the walk above made them in creation order.
	byName := map[string]layout.Filesystem{}
	for _, fs := range l.Filesystems {
		byName[fs.Node] = fs
	}
	l.Filesystems = l.Filesystems[:0]
	for _, n := range b.nodes {
		if n.fs != nil {
			l.Filesystems = append(l.Filesystems, byName[n.name])
		}
	}
	if len(mountOrder) == 0 {
		return nil, StageFstab, errAt("", "the configuration mounts nothing: DIB's writefstab fails (KeyError: 'mount_order')")
	}
	for i, m := range mountOrder {
		fs := l.Filesystem(m.mount.base)
		mp := m.mount.mountPoint
		if mp == "/" {
			fs.Root = true
		}
		fs.MountPoint = mp
		l.Mounts = append(l.Mounts, layout.Mount{Node: m.name, MountPoint: mp, Filesystem: fs.Node, Order: i})
		f, ok := fstabByMount[m.name]
		if !ok {
			continue
		}
		e := layout.FstabEntry{
			Node: f.name, Mount: m.name, Filesystem: fs.Node, Spec: "LABEL=" + fs.Label,
			MountPoint: mp, FSType: fs.Type, Options: f.fstab.options,
			DumpFreq: int(f.fstab.dumpFreq), FsckPassno: int(f.fstab.fsckPassno),
		}
		if mp == "none" { // swap
			e.Options, e.DumpFreq, e.FsckPassno = "sw", 0, 0
		}
		e.Line = fmt.Sprintf("%s %s %s %s %d %d", e.Spec, e.MountPoint, e.FSType, e.Options, e.DumpFreq, e.FsckPassno)
		l.Fstab = append(l.Fstab, e)
	}
	return l, "", nil
}

// makeFilesystem is what DIB's FilesystemNode.create runs.
func makeFilesystem(f *fsNode) layout.Filesystem {
	fs := layout.Filesystem{Node: f.name, Base: f.base, Type: f.typ, Label: f.label, UUID: f.uuid, Opts: f.opts}
	ext := f.typ == "ext2" || f.typ == "ext3" || f.typ == "ext4"
	if f.typ == "swap" {
		fs.Command = append(append([]string{"mkswap"}, f.opts...), "-L", f.label, "-U", f.uuid)
		return fs
	}
	fs.Command = append([]string{"mkfs", "-t", f.typ}, f.opts...)
	if f.typ == "vfat" || f.typ == "fat" {
		fs.Command = append(fs.Command, "-n", f.label)
		fs.VolumeID = volumeID(f.uuid)
	} else {
		fs.Command = append(fs.Command, "-L", f.label)
	}
	switch {
	case ext:
		fs.Command = append(fs.Command, "-U", f.uuid)
	case f.typ == "xfs":
		fs.Command = append(fs.Command, "-m", "uuid="+f.uuid)
	}
	if ext || f.typ == "xfs" {
		fs.Command = append(fs.Command, "-q")
	}
	return fs
}

// volumeID derives a FAT serial from a UUID: its first 8 hex digits, or a
// hash when it has none.
func volumeID(uuid string) string {
	h := strings.ToUpper(strings.ReplaceAll(uuid, "-", ""))
	if len(h) >= 8 {
		if _, err := strconv.ParseUint(h[:8], 16, 32); err == nil {
			return h[:8]
		}
	}
	s := sha256.Sum256([]byte(uuid))
	return fmt.Sprintf("%X", s[:4])
}

const extentBytes = 4 << 20

// createLVM is what DIB's LVMNode.create runs: pvcreate, vgcreate and
// lvcreate for all its volumes. Sizes are rounded down to the 4 MiB
// extent (DIB passes bytes to -L, or -V for thin volumes).
func (b *builder) createLVM(n *node, devs map[string]device) (*layout.LVM, *diag.Diagnostic) {
	out := &layout.LVM{Node: n.name}
	pvSize := map[string]int64{}
	for _, pv := range n.lvm.pvs {
		d, ok := devs[pv.base]
		if !ok {
			return nil, dsubject(errAt(n.ptr, "lvm pv %s: base %s is not a block device (DIB: KeyError: '%s')", pv.name, pv.base, pv.base), pv.name)
		}
		pvSize[pv.name] = d.size
		out.PVs = append(out.PVs, layout.PV{Node: pv.name, Base: pv.base, Options: pv.options, SizeBytes: d.size})
	}
	vgFree := map[string]int64{}
	vgTotal := map[string]int64{}
	for _, vg := range n.lvm.vgs {
		var ext int64
		for _, pv := range vg.base {
			if e := (pvSize[pv] - mib) / extentBytes; e > 0 {
				ext += e
			}
		}
		vgTotal[vg.name], vgFree[vg.name] = ext, ext
		out.VGs = append(out.VGs, layout.VG{Node: vg.name, PVs: vg.base, Options: vg.options, ExtentBytes: extentBytes, Extents: ext})
	}
	for _, lv := range n.lvm.lvs {
		l := layout.LV{Node: lv.name, VG: lv.base, Type: lv.typ, ThinPool: lv.thinPool, Options: lv.options,
			MapperName: strings.ReplaceAll(lv.base, "-", "--") + "-" + strings.ReplaceAll(lv.name, "-", "--")}
		if lv.size != nil {
			size, err := ParseSize(lv.size)
			if err != nil {
				return nil, dsubject(errAt(lv.ptr+"/size", "lvm lv %s: %v", lv.name, err), lv.name)
			}
			l.Size = pyStr(lv.size)
			l.SizeBytes = size / extentBytes * extentBytes
			l.ExtentCount = l.SizeBytes / extentBytes
		} else {
			l.Extents = pyStr(lv.extents)
			l.ExtentCount = lvExtents(l.Extents, vgTotal[lv.base], vgFree[lv.base])
		}
		l.EstimatedBytes = l.ExtentCount * extentBytes
		if lv.typ != layout.LVThin {
			vgFree[lv.base] -= l.ExtentCount
			if vgFree[lv.base] < 0 {
				b.warnings = append(b.warnings, diag.Warningf("lvm lv %s: volume group %s has about %d extents of 4 MiB, the logical volumes ask for more; lvcreate will fail", lv.name, lv.base, vgTotal[lv.base]).WithPath(lv.ptr).WithSubject(lv.name))
			}
		}
		devs[lv.name] = device{size: l.EstimatedBytes, sectorSize: 512}
		out.LVs = append(out.LVs, l)
	}
	return out, nil
}

// lvExtents estimates lvcreate -l: a count, or N%VG / N%PVS / N%FREE,
// rounded down.
func lvExtents(spec string, total, free int64) int64 {
	pct := func(s string, of int64) int64 {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0
		}
		return int64(f * float64(of) / 100)
	}
	switch {
	case strings.HasSuffix(spec, "%VG"):
		return pct(strings.TrimSuffix(spec, "%VG"), total)
	case strings.HasSuffix(spec, "%PVS"):
		return pct(strings.TrimSuffix(spec, "%PVS"), total)
	case strings.HasSuffix(spec, "%FREE"):
		return pct(strings.TrimSuffix(spec, "%FREE"), free)
	}
	n, _ := strconv.ParseInt(spec, 10, 64)
	return n
}
