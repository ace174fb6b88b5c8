package blockdev

import (
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
	StageCreate = layout.StageCreate
	StageFstab  = layout.StageFstab
)

func (p Params) uuid(n int, node string) string {
	if p.UUIDs != nil {
		return p.UUIDs(n, node)
	}
	return strings.ToLower(layout.SeededGUID(p.Seed, "uuid", node))
}

// result is everything one compilation produces; tests look at all of it.
type result struct {
	final    *Config
	template *layout.Template
	layout   *layout.Layout
	graph    *Graph
	stage    string // the stage of the first error, "" when none
	diags    diag.Diagnostics
	strict   diag.Diagnostics // check.go: what DIB accepts but the build would fail on
}

// Compile computes the disk layout DIB would create from cfg with p. The
// layout is returned even with errors when the failure is in DIB's getval
// only (e.g. a root filesystem without label; disk-image-create stops
// there), otherwise nil on error.
func Compile(cfg *Config, p Params) (*layout.Layout, diag.Diagnostics) {
	_, l, ds := CompileTemplate(cfg, p)
	return l, ds
}

// CompileTemplate is Compile that also returns the layout template, from
// which layout.Resolve computes the layout at another image size (nil with
// the layout).
func CompileTemplate(cfg *Config, p Params) (*layout.Template, *layout.Layout, diag.Diagnostics) {
	r := compile(cfg, p)
	if len(r.strict) > 0 {
		return nil, nil, append(r.diags, r.strict...)
	}
	if r.layout == nil {
		return nil, nil, r.diags
	}
	return r.template, r.layout, r.diags
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
	r.template = b.template(g.Order, gv)
	l, warnings, stage, d := layout.ResolveStage(r.template, p.ImageSize)
	b.warnings = append(b.warnings, warnings...)
	if d != nil {
		return fail(stage, d)
	}
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

// template is the closed form of the constructed graph that
// layout.Resolve reads.
func (b *builder) template(order []string, gv layout.GetVal) *layout.Template {
	t := &layout.Template{Seed: b.p.Seed, Order: order, GetVal: gv}
	seen := map[*tableNode]bool{}
	for _, n := range b.nodes {
		tn := layout.TemplateNode{Name: n.name, Plugin: n.plugin, Kind: n.kind, Path: n.ptr}
		switch {
		case n.loop != nil:
			tn.Loop = &layout.LoopTemplate{SizeBytes: n.loop.size, Directory: n.loop.directory, SectorSize: n.loop.sectorSize}
		case n.part != nil:
			tn.Table = n.part.table.name
			if !seen[n.part.table] {
				seen[n.part.table] = true
				t.Tables = append(t.Tables, tableTemplate(n.part.table))
			}
		case n.lvm != nil:
			tn.LVM = lvmTemplate(n.lvm)
		case n.fs != nil:
			tn.Mkfs = &layout.MkfsTemplate{Base: n.fs.base, Type: n.fs.typ, Label: n.fs.label, Opts: n.fs.opts, UUID: n.fs.uuid}
		case n.mount != nil:
			tn.Mount = &layout.MountTemplate{Base: n.mount.base, MountPoint: n.mount.mountPoint}
		case n.fstab != nil:
			tn.Fstab = &layout.FstabTemplate{Base: n.fstab.base, Options: n.fstab.options, DumpFreq: n.fstab.dumpFreq, FsckPassno: n.fstab.fsckPassno}
		}
		t.Nodes = append(t.Nodes, tn)
	}
	return t
}

func tableTemplate(t *tableNode) layout.TableTemplate {
	out := layout.TableTemplate{Name: t.name, Base: t.base, Label: t.label, AlignBytes: t.align, Path: t.ptr}
	for _, p := range t.partitions {
		out.Partitions = append(out.Partitions, layout.PartitionTemplate{
			Name: p.name, Flags: p.flags, Boot: p.boot, Primary: p.primary, Size: sizeOf(p.size),
			MBRType: p.mbrType, MBRTypeBad: p.mbrBad, GPTType: p.gptType, Path: p.ptr,
		})
	}
	return out
}

func lvmTemplate(n *lvmNode) *layout.LVMTemplate {
	out := &layout.LVMTemplate{}
	for _, pv := range n.pvs {
		out.PVs = append(out.PVs, layout.PVTemplate{Name: pv.name, Base: pv.base, Options: pv.options})
	}
	for _, vg := range n.vgs {
		out.VGs = append(out.VGs, layout.VGTemplate{Name: vg.name, PVs: vg.base, Options: vg.options})
	}
	for _, lv := range n.lvs {
		l := layout.LVTemplate{Name: lv.name, VG: lv.base, Options: lv.options, Type: lv.typ, ThinPool: lv.thinPool, Path: lv.ptr}
		if lv.size != nil {
			s := sizeOf(lv.size)
			l.Size = &s
		} else {
			l.Extents = pyStr(lv.extents)
		}
		out.LVs = append(out.LVs, l)
	}
	return out
}
