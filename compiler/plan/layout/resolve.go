package layout

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/dibuild/dib/spec/diag"
)

// Stages of DIB's flow where Resolve can fail (the oracle's error_stage
// names).
const (
	StageCreate = "cmd_create"
	StageFstab  = "cmd_writefstab"
)

const mib = 1 << 20

// Resolve computes the layout of t on an image of imageBytes bytes (the
// size of every local_loop without a size of its own), as DIB's cmd_create
// and cmd_writefstab do. It is pure: the compiler calls it for the plan's
// preview, the runtime again once it has measured the tree.
func Resolve(t *Template, imageBytes int64) (*Layout, diag.Diagnostics) {
	l, warnings, _, d := ResolveStage(t, imageBytes)
	if d != nil {
		return nil, append(warnings, *d)
	}
	return l, warnings
}

// ResolveStage is Resolve with the warnings apart from the error and the
// stage of DIB's flow where the error happens.
func ResolveStage(t *Template, imageBytes int64) (l *Layout, warnings diag.Diagnostics, stage string, err *diag.Diagnostic) {
	r := &resolver{t: t, imageBytes: imageBytes, byName: map[string]*TemplateNode{}}
	for i := range t.Nodes {
		r.byName[t.Nodes[i].Name] = &t.Nodes[i]
	}
	l, stage, err = r.create()
	if err == nil {
		l.GetVal = t.GetVal
	}
	return l, r.warnings, stage, err
}

// resolver holds what DIB's state dict knows while it creates the nodes.
type resolver struct {
	t          *Template
	imageBytes int64
	byName     map[string]*TemplateNode
	warnings   diag.Diagnostics
}

func (r *resolver) warn(d diag.Diagnostic) { r.warnings = append(r.warnings, d) }

func errAt(ptr, format string, args ...any) *diag.Diagnostic {
	d := diag.Errorf(format, args...).WithPath(ptr)
	return &d
}

// dsubject sets the subject of d and returns it.
func dsubject(d *diag.Diagnostic, s string) *diag.Diagnostic {
	d.Subject = s
	return d
}

// device is what DIB's state['blockdev'] knows of a created node.
type device struct {
	size       int64
	sectorSize int
}

func (r *resolver) table(name string) *TableTemplate {
	for i := range r.t.Tables {
		if r.t.Tables[i].Name == name {
			return &r.t.Tables[i]
		}
	}
	return nil
}

// create walks the creation order as DIB's cmd_create does and computes
// what each node makes, then the fstab (cmd_writefstab).
func (r *resolver) create() (*Layout, string, *diag.Diagnostic) {
	l := &Layout{}
	devs := map[string]device{}
	filesys := map[string]bool{}
	tables := map[string]bool{}
	var mountOrder []*TemplateNode
	fstabByMount := map[string]*TemplateNode{}
	for _, name := range r.t.Order {
		n := r.byName[name]
		if n == nil {
			return nil, StageCreate, errAt("", "the layout template has no node %s", name)
		}
		l.CreationOrder = append(l.CreationOrder, Step{Node: name, Kind: n.Kind, Plugin: n.Plugin})
		switch {
		case n.Loop != nil:
			img, d := r.image(n)
			if d != nil {
				return nil, StageCreate, d
			}
			l.Images = append(l.Images, img)
			devs[name] = device{size: img.SizeBytes, sectorSize: img.SectorSize}
		case n.Table != "":
			if tables[n.Table] {
				continue
			}
			tables[n.Table] = true
			t := r.table(n.Table)
			if t == nil {
				return nil, StageCreate, errAt(n.Path, "the layout template has no table %s", n.Table)
			}
			img := l.Image(t.Base)
			if img == nil {
				return nil, StageCreate, dsubject(errAt(t.Path+"/base", "partitioning %s: base %s is not a local_loop image (DIB: KeyError: 'image')", t.Name, t.Base), t.Name)
			}
			var pt *PartitionTable
			var d *diag.Diagnostic
			if t.Label == LabelMBR {
				if img.SectorSize != mbrSector {
					r.warn(diag.Warningf("partitioning %s: DIB's MBR writer assumes 512-byte sectors; the image has %d-byte sectors", t.Name, img.SectorSize).WithPath(t.Path))
				}
				pt, d = r.mbrTable(t, img)
			} else {
				pt, d = r.gptTable(t, img)
			}
			if d != nil {
				return nil, StageCreate, d
			}
			l.PartitionTables = append(l.PartitionTables, *pt)
			for _, p := range pt.Partitions {
				devs[p.Node] = device{size: p.SizeBytes, sectorSize: pt.SectorSize}
			}
		case n.LVM != nil:
			lv, d := r.createLVM(n, devs)
			if d != nil {
				return nil, StageCreate, d
			}
			l.LVM = append(l.LVM, *lv)
		case n.Mkfs != nil:
			if _, ok := devs[n.Mkfs.Base]; !ok {
				return nil, StageCreate, dsubject(errAt(n.Path+"/base", "mkfs %s: base %s is not a block device (DIB: KeyError: '%s')", name, n.Mkfs.Base, n.Mkfs.Base), name)
			}
			l.Filesystems = append(l.Filesystems, makeFilesystem(name, n.Mkfs))
			filesys[name] = true
		case n.Mount != nil:
			if !filesys[n.Mount.Base] {
				return nil, StageCreate, dsubject(errAt(n.Path+"/base", "mount %s: base %s is not a filesystem (DIB: KeyError: '%s')", name, n.Mount.Base, n.Mount.Base), name)
			}
			mountOrder = append(mountOrder, n)
		case n.Fstab != nil:
			fstabByMount[n.Fstab.Base] = n
		}
	}
	for i := len(r.t.Order) - 1; i >= 0; i-- {
		l.CleanupOrder = append(l.CleanupOrder, r.t.Order[i])
	}
	// Filesystems in construction (config) order, as DIB's state lists
	// them; the walk above made them in creation order.
	byName := map[string]Filesystem{}
	for _, fs := range l.Filesystems {
		byName[fs.Node] = fs
	}
	l.Filesystems = l.Filesystems[:0]
	for _, n := range r.t.Nodes {
		if n.Mkfs != nil {
			l.Filesystems = append(l.Filesystems, byName[n.Name])
		}
	}
	if len(mountOrder) == 0 {
		return nil, StageFstab, errAt("", "the configuration mounts nothing: DIB's writefstab fails (KeyError: 'mount_order')")
	}
	l.Mounts, l.Fstab = mounts(l, mountOrder, fstabByMount)
	return l, "", nil
}

// image is a local_loop image: its own size, else the image size.
func (r *resolver) image(n *TemplateNode) (Image, *diag.Diagnostic) {
	img := Image{Node: n.Name, FileName: n.Name + ".raw", Directory: n.Loop.Directory, SizeBytes: n.Loop.SizeBytes, SectorSize: n.Loop.SectorSize}
	if img.SizeBytes == 0 {
		if r.imageBytes <= 0 {
			d := errAt(n.Path, "local_loop %s has no size and no image size was given", n.Name)
			d.Hint = "give the image size (DIB computes it from the built tree) or a size: on the local_loop"
			return img, d
		}
		img.SizeBytes = r.imageBytes
	}
	if img.SectorSize <= 0 || img.SizeBytes%int64(img.SectorSize) != 0 {
		return img, errAt(n.Path, "local_loop %s: size %d is not a positive multiple of the sector size %d", n.Name, img.SizeBytes, img.SectorSize)
	}
	return img, nil
}

// mounts are the mount nodes in mount order with their fstab lines, as
// DIB's cmd_writefstab writes them; they mark the filesystems mounted.
func mounts(l *Layout, order []*TemplateNode, fstabByMount map[string]*TemplateNode) ([]Mount, []FstabEntry) {
	var ms []Mount
	var tab []FstabEntry
	for i, m := range order {
		fs := l.Filesystem(m.Mount.Base)
		mp := m.Mount.MountPoint
		if mp == "/" {
			fs.Root = true
		}
		fs.MountPoint = mp
		ms = append(ms, Mount{Node: m.Name, MountPoint: mp, Filesystem: fs.Node, Order: i})
		f, ok := fstabByMount[m.Name]
		if !ok {
			continue
		}
		e := FstabEntry{
			Node: f.Name, Mount: m.Name, Filesystem: fs.Node, Spec: "LABEL=" + fs.Label,
			MountPoint: mp, FSType: fs.Type, Options: f.Fstab.Options,
			DumpFreq: int(f.Fstab.DumpFreq), FsckPassno: int(f.Fstab.FsckPassno),
		}
		if mp == "none" { // swap
			e.Options, e.DumpFreq, e.FsckPassno = "sw", 0, 0
		}
		e.Line = fmt.Sprintf("%s %s %s %s %d %d", e.Spec, e.MountPoint, e.FSType, e.Options, e.DumpFreq, e.FsckPassno)
		tab = append(tab, e)
	}
	return ms, tab
}

// makeFilesystem is what DIB's FilesystemNode.create runs.
func makeFilesystem(name string, f *MkfsTemplate) Filesystem {
	fs := Filesystem{Node: name, Base: f.Base, Type: f.Type, Label: f.Label, UUID: f.UUID, Opts: f.Opts}
	ext := f.Type == "ext2" || f.Type == "ext3" || f.Type == "ext4"
	if f.Type == "swap" {
		fs.Command = append(append([]string{"mkswap"}, f.Opts...), "-L", f.Label, "-U", f.UUID)
		return fs
	}
	fs.Command = append([]string{"mkfs", "-t", f.Type}, f.Opts...)
	if f.Type == "vfat" || f.Type == "fat" {
		fs.Command = append(fs.Command, "-n", f.Label)
		fs.VolumeID = volumeID(f.UUID)
	} else {
		fs.Command = append(fs.Command, "-L", f.Label)
	}
	switch {
	case ext:
		fs.Command = append(fs.Command, "-U", f.UUID)
	case f.Type == "xfs":
		fs.Command = append(fs.Command, "-m", "uuid="+f.UUID)
	}
	if ext || f.Type == "xfs" {
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
func (r *resolver) createLVM(n *TemplateNode, devs map[string]device) (*LVM, *diag.Diagnostic) {
	out := &LVM{Node: n.Name}
	pvSize := map[string]int64{}
	for _, pv := range n.LVM.PVs {
		d, ok := devs[pv.Base]
		if !ok {
			return nil, dsubject(errAt(n.Path, "lvm pv %s: base %s is not a block device (DIB: KeyError: '%s')", pv.Name, pv.Base, pv.Base), pv.Name)
		}
		pvSize[pv.Name] = d.size
		out.PVs = append(out.PVs, PV{Node: pv.Name, Base: pv.Base, Options: pv.Options, SizeBytes: d.size})
	}
	vgFree := map[string]int64{}
	vgTotal := map[string]int64{}
	for _, vg := range n.LVM.VGs {
		var ext int64
		for _, pv := range vg.PVs {
			if e := (pvSize[pv] - mib) / extentBytes; e > 0 {
				ext += e
			}
		}
		vgTotal[vg.Name], vgFree[vg.Name] = ext, ext
		out.VGs = append(out.VGs, VG{Node: vg.Name, PVs: vg.PVs, Options: vg.Options, ExtentBytes: extentBytes, Extents: ext})
	}
	for _, lv := range n.LVM.LVs {
		l := LV{Node: lv.Name, VG: lv.VG, Type: lv.Type, ThinPool: lv.ThinPool, Options: lv.Options,
			MapperName: strings.ReplaceAll(lv.VG, "-", "--") + "-" + strings.ReplaceAll(lv.Name, "-", "--")}
		if lv.Size != nil {
			size, err := lv.Size.Bytes()
			if err != nil {
				return nil, dsubject(errAt(lv.Path+"/size", "lvm lv %s: %v", lv.Name, err), lv.Name)
			}
			l.Size = lv.Size.Spec
			l.SizeBytes = size / extentBytes * extentBytes
			l.ExtentCount = l.SizeBytes / extentBytes
		} else {
			l.Extents = lv.Extents
			l.ExtentCount = lvExtents(l.Extents, vgTotal[lv.VG], vgFree[lv.VG])
		}
		l.EstimatedBytes = l.ExtentCount * extentBytes
		if lv.Type != LVThin {
			vgFree[lv.VG] -= l.ExtentCount
			if vgFree[lv.VG] < 0 {
				r.warn(diag.Warningf("lvm lv %s: volume group %s has about %d extents of 4 MiB, the logical volumes ask for more; lvcreate will fail", lv.Name, lv.VG, vgTotal[lv.VG]).WithPath(lv.Path).WithSubject(lv.Name))
			}
		}
		devs[lv.Name] = device{size: l.EstimatedBytes, sectorSize: 512}
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

func digest(seed, kind, name string) [32]byte {
	return sha256.Sum256([]byte("dib-blockdev\x00" + kind + "\x00" + seed + "\x00" + name))
}

// SeededGUID is the GUID of kind and name for seed: random-looking
// (version 4), deterministic. The compiler makes filesystem UUIDs with it
// (kind "uuid", lower-cased), Resolve the GPT GUIDs.
func SeededGUID(seed, kind, name string) string {
	h := digest(seed, kind, name)
	h[6] = h[6]&0x0f | 0x40 // version 4
	h[8] = h[8]&0x3f | 0x80 // RFC 4122 variant
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16]))
}

func diskID(seed, base string) uint32 {
	h := digest(seed, "mbr-disk-id", base)
	return binary.LittleEndian.Uint32(h[:4])
}
