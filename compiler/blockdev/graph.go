package blockdev

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/dominikbraun/graph"

	"github.com/dibuild/dib/compiler/internal/pyrepr"
	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/spec/diag"
)

// Graph is DIB's block-device node graph.
type Graph struct {
	// Nodes in insertion order: config order, each plugin's nodes in the
	// order it returns them (partitions in order; PVs, VGs, LVs, then the
	// LVM driver node).
	Nodes []GraphNode `json:"nodes"`
	// Edges in networkx's listing order: by source node in insertion
	// order, then by target in edge-insertion order.
	Edges []Edge `json:"edges"`
	// Order is the creation order (networkx 2.8.8 topological_sort).
	Order []string `json:"order"`
}

// GraphNode is one node of the graph.
type GraphNode struct {
	Name   string `json:"name"`
	Plugin string `json:"plugin"`
	Kind   string `json:"kind"` // a layout.Kind… constant
}

// Edge is one dependency: From is created before To.
type Edge struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// node is one graph node with what its plugin constructed.
type node struct {
	name   string
	plugin string
	kind   string
	ptr    string // JSON pointer of the config values it came from
	// basePtr is the JSON pointer of the "base" that names from[0] (for
	// a partition, its partitioning's base).
	basePtr string
	from    []string
	to      []string

	loop  *loopNode
	part  *partNode
	lvm   *lvmNode
	pv    *pvNode
	vg    *vgNode
	lv    *lvNode
	fs    *fsNode
	mount *mountNode
	fstab *fstabNode
}

type loopNode struct {
	size       int64
	directory  string
	sectorSize int
}

type tableNode struct {
	name       string
	base       string
	label      string
	align      int64
	partitions []*partNode
	ptr        string
}

type partNode struct {
	name    string
	table   *tableNode
	flags   []string
	boot    bool
	primary bool
	size    any
	mbrType int64
	mbrBad  bool // the MBR type does not fit a byte
	gptType string
	ptr     string
}

type lvmNode struct {
	pvs []*pvNode
	vgs []*vgNode
	lvs []*lvNode
}

type pvNode struct {
	name    string
	base    string
	options []string
}

type vgNode struct {
	name    string
	base    []string
	options []string
}

type lvNode struct {
	name     string
	base     string
	options  []string
	size     any
	extents  any
	typ      string
	thinPool string
	ptr      string
}

type fsNode struct {
	name  string
	base  string
	typ   string
	label string
	opts  []string
	uuid  string
	ptr   string
}

type mountNode struct {
	base       string
	mountPoint string
}

type fstabNode struct {
	base       string
	options    string
	dumpFreq   int64
	fsckPassno int64
}

// fsMaxLabel are the label length limits DIB checks (level2/mkfs.py).
var fsMaxLabel = map[string]int{"ext2": 16, "ext3": 16, "ext4": 16, "xfs": 12, "vfat": 11, "swap": 16}

// builder holds the state DIB keeps in its `state` dict while it
// constructs nodes.
type builder struct {
	p          Params
	nodes      []*node
	byName     map[string]*node
	fsLabels   map[string]bool
	mountsSort [][2]string // (mount point, node), string-sorted
	uuidCount  int
	warnings   diag.Diagnostics
}

func errAt(ptr, format string, args ...any) *diag.Diagnostic {
	d := diag.Errorf(format, args...).WithPath(ptr)
	return &d
}

func (b *builder) add(n *node) *diag.Diagnostic {
	if _, dup := b.byName[n.name]; dup {
		return dsubject(errAt(n.ptr, "Duplicate node name: %s", n.name), n.name)
	}
	b.byName[n.name] = n
	b.nodes = append(b.nodes, n)
	return nil
}

// dsubject sets the subject of d and returns it.
func dsubject(d *diag.Diagnostic, s string) *diag.Diagnostic {
	d.Subject = s
	return d
}

func strList(v any) []string {
	switch t := v.(type) {
	case nil:
		return nil
	case []any:
		out := make([]string, len(t))
		for i, x := range t {
			out[i] = pyStr(x)
		}
		return out
	case string:
		return []string{t}
	}
	return []string{pyStr(v)}
}

// construct is the first half of DIB's create_graph: every config entry
// becomes its plugin's nodes, in config order, with the checks the plugin
// constructors make.
func (b *builder) construct(cfg *Config) *diag.Diagnostic {
	for _, e := range cfg.Entries {
		v := e.Values
		ptr := v.Pointer
		nameV, ok := v.Get("name")
		if !ok {
			return errAt(ptr, "%s entry needs a 'name' (KeyError: 'name')", e.Plugin)
		}
		name := pyStr(nameV)
		var nodes []*node
		switch e.Plugin {
		case PluginLocalLoop:
			n, d := b.localLoop(name, v)
			if d != nil {
				return d
			}
			nodes = []*node{n}
		case PluginPartitioning:
			ns, d := b.partitioning(name, v)
			if d != nil {
				return d
			}
			nodes = ns
		case PluginLVM:
			ns, d := b.lvmPlugin(name, v)
			if d != nil {
				return d
			}
			nodes = ns
		case PluginMkfs:
			n, d := b.mkfs(name, v)
			if d != nil {
				return d
			}
			nodes = []*node{n}
		case PluginMount:
			n, d := b.mountPlugin(name, v)
			if d != nil {
				return d
			}
			nodes = []*node{n}
		case PluginFstab:
			n, d := b.fstabPlugin(name, v)
			if d != nil {
				return d
			}
			nodes = []*node{n}
		default:
			return errAt(ptr, "Config element [%s] is not implemented", e.Plugin)
		}
		for _, n := range nodes {
			if d := b.add(n); d != nil {
				return d
			}
		}
	}
	return nil
}

func (b *builder) localLoop(name string, v *Map) (*node, *diag.Diagnostic) {
	ln := &loopNode{sectorSize: 512}
	if s, ok := v.Get("size"); ok {
		n, err := ParseSize(s)
		if err != nil {
			return nil, errAt(v.Pointer+"/size", "local_loop %s: %v", name, err)
		}
		ln.size = n
	}
	// Without a size the image is the image size, which layout.Resolve
	// gives it.
	if d, ok := v.Get("directory"); ok {
		ln.directory = pyStr(d)
	}
	if bs, ok := v.Get("block_size"); ok {
		n, err := ParseSize(bs)
		if err != nil || (n != 512 && n != 1024 && n != 2048 && n != 4096) {
			return nil, errAt(v.Pointer+"/block_size", "local_loop %s: block_size must be 512, 1024, 2048 or 4096, got %s", name, pyRepr(bs))
		}
		ln.sectorSize = int(n)
	}
	if b.p.SectorSize != 0 {
		switch b.p.SectorSize {
		case 512, 1024, 2048, 4096:
		default:
			return nil, errAt("", "sector size must be 512, 1024, 2048 or 4096, got %d", b.p.SectorSize)
		}
		ln.sectorSize = b.p.SectorSize
	}
	if v.Has("size") && (ln.size <= 0 || ln.size%int64(ln.sectorSize) != 0) {
		return nil, errAt(v.Pointer, "local_loop %s: size %d is not a positive multiple of the sector size %d", name, ln.size, ln.sectorSize)
	}
	return &node{name: name, plugin: PluginLocalLoop, kind: layout.KindLocalLoop, ptr: v.Pointer, loop: ln}, nil
}

func (b *builder) partitioning(name string, v *Map) ([]*node, *diag.Diagnostic) {
	if !v.Has("base") {
		return nil, errAt(v.Pointer, "Partitioning config needs 'base'")
	}
	if !v.Has("partitions") {
		return nil, errAt(v.Pointer, "Partitioning config needs 'partitions'")
	}
	if !v.Has("label") {
		return nil, errAt(v.Pointer, "Partitioning config needs 'label'")
	}
	label := pyStr(v.vals["label"])
	if label != layout.LabelMBR && label != layout.LabelGPT {
		return nil, errAt(v.Pointer+"/label", "Label must be 'mbr' or 'gpt'")
	}
	t := &tableNode{name: name, base: pyStr(v.vals["base"]), label: label, align: 1 << 20, ptr: v.Pointer}
	if a, ok := v.Get("align"); ok {
		n, err := ParseSize(a)
		if err != nil {
			return nil, errAt(v.Pointer+"/align", "partitioning %s: align: %v", name, err)
		}
		if n < 512 || n%512 != 0 {
			return nil, errAt(v.Pointer+"/align", "partitioning %s: align must be a positive multiple of 512 bytes, got %d", name, n)
		}
		t.align = n
	}
	parts, ok := v.vals["partitions"].([]any)
	if !ok {
		return nil, errAt(v.Pointer+"/partitions", "'partitions' must be a list")
	}
	var nodes []*node
	var prev string
	for i, raw := range parts {
		pm, ok := raw.(*Map)
		pptr := fmt.Sprintf("%s/partitions/%d", v.Pointer, i)
		if !ok {
			return nil, errAt(pptr, "a partition must be a mapping, got %s", pyRepr(raw))
		}
		if pm.Pointer != "" {
			pptr = pm.Pointer
		}
		pn, d := parsePartition(t, pm, pptr)
		if d != nil {
			return nil, d
		}
		t.partitions = append(t.partitions, pn)
		n := &node{name: pn.name, plugin: PluginPartitioning, kind: layout.KindPartition, ptr: pptr, part: pn, basePtr: v.Pointer + "/base"}
		pbase, ok := pm.Get("base")
		if !ok {
			return nil, errAt(pptr, "partition %s has no 'base' (KeyError: 'base')", pn.name)
		}
		n.from = []string{pyStr(pbase)}
		if prev != "" {
			n.from = append(n.from, prev)
		}
		prev = pn.name
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// parsePartition is one partition of table t, with the checks of DIB's
// PartitionNode.
func parsePartition(t *tableNode, pm *Map, pptr string) (*partNode, *diag.Diagnostic) {
	label := t.label
	nv, ok := pm.Get("name")
	if !ok {
		return nil, errAt(pptr, "partition has no 'name' (KeyError: 'name')")
	}
	pn := &partNode{name: pyStr(nv), table: t, ptr: pptr}
	flags := strList(pm.vals["flags"])
	if fl, ok := pm.Get("flags"); ok {
		if _, isList := fl.([]any); !isList {
			return nil, errAt(pptr+"/flags", "flags must be a list such as [ boot, primary ]")
		}
	}
	if label == layout.LabelGPT {
		for _, f := range flags {
			if f == "primary" {
				return nil, errAt(pptr+"/flags", "Primary flag not supported for GPT partitions")
			}
		}
	}
	for _, f := range flags {
		switch f {
		case "boot":
			pn.boot = true
		case "primary":
			pn.primary = true
		default:
			return nil, errAt(pptr+"/flags", "Unknown flag: %s", f)
		}
	}
	pn.flags = flags
	sz, ok := pm.Get("size")
	if !ok {
		return nil, errAt(pptr, "No size in partition %s", pn.name)
	}
	pn.size = sz
	tv, hasType := pm.Get("type")
	switch label {
	case layout.LabelGPT:
		pn.gptType = "8300"
		if hasType {
			pn.gptType = pyStr(tv)
		}
	case layout.LabelMBR:
		pn.mbrType = 0x83
		if hasType {
			s, ok := tv.(string)
			if !ok {
				return nil, errAt(pptr+"/type", "int() can't convert non-string with explicit base: MBR type must be a quoted hex string such as '83', got %s", pyRepr(tv))
			}
			n, overflow, err := parsePyHex(s)
			if err != nil {
				return nil, errAt(pptr+"/type", "invalid literal for int() with base 16: %s", pyrepr.String(s))
			}
			pn.mbrType = n
			pn.mbrBad = overflow || n < 0 || n > 255
		}
	}
	return pn, nil
}

// parsePyHex parses s as Python's int(s, 16) does (whitespace, sign, 0x
// prefix, single underscores between digits).
func parsePyHex(s string) (n int64, overflow bool, err error) {
	s = strings.TrimSpace(s)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		s = s[2:]
		if strings.HasPrefix(s, "_") {
			s = s[1:]
		}
	}
	if s == "" || strings.HasPrefix(s, "_") || strings.HasSuffix(s, "_") || strings.Contains(s, "__") {
		return 0, false, errors.New("invalid")
	}
	for _, c := range strings.ReplaceAll(s, "_", "") {
		var d int64
		switch {
		case c >= '0' && c <= '9':
			d = int64(c - '0')
		case c >= 'a' && c <= 'f':
			d = int64(c-'a') + 10
		case c >= 'A' && c <= 'F':
			d = int64(c-'A') + 10
		default:
			return 0, false, errors.New("invalid")
		}
		if n > (1<<59) && !overflow {
			overflow = true
		}
		if !overflow {
			n = n*16 + d
		}
	}
	if neg {
		n = -n
	}
	return n, overflow, nil
}

func (b *builder) lvmPlugin(name string, v *Map) ([]*node, *diag.Diagnostic) {
	for _, k := range []struct{ key, msg string }{
		{"pvs", "Lvm config requires a 'pvs'"}, {"vgs", "Lvm config needs 'vgs'"}, {"lvs", "Lvm config needs 'lvs'"},
	} {
		if !v.Has(k.key) {
			return nil, errAt(v.Pointer, "%s", k.msg)
		}
	}
	ln := &lvmNode{}
	var nodes []*node
	// PVs, then VGs (which name PVs), then LVs (which name VGs), each list
	// checked before its entries, as DIB's LVMPlugin does.
	for _, entry := range []struct {
		key  string
		make func(*Map, *lvmNode) (*node, *diag.Diagnostic)
	}{{"pvs", lvmPV}, {"vgs", lvmVG}, {"lvs", lvmLV}} {
		ms, d := lvmList(name, v, entry.key)
		if d != nil {
			return nil, d
		}
		for _, m := range ms {
			n, d := entry.make(m, ln)
			if d != nil {
				return nil, d
			}
			nodes = append(nodes, n)
		}
	}
	// The driver node depends on the devices of all PVs, and every PV
	// depends on it (DIB's LVMNode.get_edges).
	driver := &node{name: name, plugin: PluginLVM, kind: layout.KindLVM, ptr: v.Pointer, lvm: ln}
	seen := map[string]bool{}
	for _, pv := range ln.pvs {
		if !seen[pv.base] {
			seen[pv.base] = true
			driver.from = append(driver.from, pv.base)
		}
		driver.to = append(driver.to, pv.name)
	}
	return append(nodes, driver), nil
}

// lvmList is the list of mappings under key of an lvm entry.
func lvmList(name string, v *Map, key string) ([]*Map, *diag.Diagnostic) {
	raw, ok := v.vals[key].([]any)
	if !ok {
		return nil, errAt(v.Pointer+"/"+key, "lvm %s: '%s' must be a list", name, key)
	}
	out := make([]*Map, len(raw))
	for i, x := range raw {
		m, ok := x.(*Map)
		if !ok {
			return nil, errAt(fmt.Sprintf("%s/%s/%d", v.Pointer, key, i), "lvm %s: %s entries must be mappings", name, key)
		}
		out[i] = m
	}
	return out, nil
}

// lvmPV is one pvs entry.
func lvmPV(m *Map, ln *lvmNode) (*node, *diag.Diagnostic) {
	if !m.Has("name") {
		return nil, errAt(m.Pointer, "Missing 'name' in pvs config")
	}
	if !m.Has("base") {
		return nil, errAt(m.Pointer, "Missing 'base' in pvs_config")
	}
	pv := &pvNode{name: pyStr(m.vals["name"]), base: pyStr(m.vals["base"]), options: strList(m.vals["options"])}
	ln.pvs = append(ln.pvs, pv)
	return &node{name: pv.name, plugin: PluginLVM, kind: layout.KindPV, ptr: m.Pointer, pv: pv}, nil
}

// lvmVG is one vgs entry; its base names PVs of the same lvm entry.
func lvmVG(m *Map, ln *lvmNode) (*node, *diag.Diagnostic) {
	if !m.Has("name") {
		return nil, errAt(m.Pointer, "Missing 'name' in vgs config")
	}
	if !m.Has("base") {
		return nil, errAt(m.Pointer, "Missing 'base' in vgs config")
	}
	var bases []string
	switch t := m.vals["base"].(type) {
	case string:
		// DIB iterates the value: a string is walked character by
		// character, which never names a PV.
		for _, r := range t {
			bases = append(bases, string(r))
		}
	default:
		bases = strList(t)
	}
	for _, pvName := range bases {
		found := false
		for _, pv := range ln.pvs {
			if pv.name == pvName {
				found = true
			}
		}
		if !found {
			return nil, errAt(m.Pointer+"/base", "base:%s in vgs does not match a valid pvs", pvName)
		}
	}
	vg := &vgNode{name: pyStr(m.vals["name"]), base: bases, options: strList(m.vals["options"])}
	ln.vgs = append(ln.vgs, vg)
	return &node{name: vg.name, plugin: PluginLVM, kind: layout.KindVG, ptr: m.Pointer, vg: vg, from: append([]string(nil), bases...), basePtr: m.Pointer + "/base"}, nil
}

// lvmLV is one lvs entry; its base names a VG of the same lvm entry.
func lvmLV(m *Map, ln *lvmNode) (*node, *diag.Diagnostic) {
	if !m.Has("name") {
		return nil, errAt(m.Pointer, "Missing 'name' in lvs config")
	}
	if !m.Has("base") {
		return nil, errAt(m.Pointer, "Missing 'base' in lvs config")
	}
	if !m.Has("size") && !m.Has("extents") {
		return nil, errAt(m.Pointer, "Missing 'size' or 'extents' in lvs config")
	}
	base, isStr := m.vals["base"].(string)
	found := false
	for _, vg := range ln.vgs {
		if isStr && vg.name == base {
			found = true
		}
	}
	if !found {
		return nil, errAt(m.Pointer+"/base", "base:%s in lvs does not match a valid vg", pyStr(m.vals["base"]))
	}
	lv := &lvNode{name: pyStr(m.vals["name"]), base: base, options: strList(m.vals["options"]),
		size: m.vals["size"], extents: m.vals["extents"], ptr: m.Pointer}
	if t, ok := m.Get("type"); ok && t != nil {
		lv.typ = pyStr(t)
		if lv.typ != layout.LVThin && lv.typ != layout.LVThinPool {
			return nil, errAt(m.Pointer+"/type", "Unsupported type:%s, supported types: thin, thin-pool", lv.typ)
		}
	}
	if tp, ok := m.Get("thin-pool"); ok && tp != nil {
		lv.thinPool = pyStr(tp)
	}
	ln.lvs = append(ln.lvs, lv)
	return &node{name: lv.name, plugin: PluginLVM, kind: layout.KindLV, ptr: m.Pointer, lv: lv, from: []string{base}, basePtr: m.Pointer + "/base"}, nil
}

func (b *builder) mkfs(name string, v *Map) (*node, *diag.Diagnostic) {
	fs := &fsNode{name: name, ptr: v.Pointer}
	for _, k := range []string{"base", "type"} {
		if !v.Has(k) {
			return nil, errAt(v.Pointer, "Mkfs config needs [%s]", k)
		}
	}
	fs.base = pyStr(v.vals["base"])
	fs.typ = pyStr(v.vals["type"])
	if l, ok := v.Get("label"); ok && l != nil {
		fs.label = pyStr(l)
	} else {
		fs.label = name
	}
	if fs.typ == "vfat" || fs.typ == "fat" {
		fs.label = strings.ToUpper(fs.label)
	}
	if b.fsLabels[fs.label] {
		return nil, dsubject(errAt(v.Pointer, "File system label [%s] used more than once", fs.label), name)
	}
	b.fsLabels[fs.label] = true
	if max, ok := fsMaxLabel[fs.typ]; ok {
		if n := len([]rune(fs.label)); n > max {
			return nil, dsubject(errAt(v.Pointer, "Label [%s] too long for filesystem [%s]: %d > %d", fs.label, fs.typ, n, max), name)
		}
	} else {
		b.warnings = append(b.warnings, diag.Warningf("Length of label [%s] cannot be checked for filesystem [%s]: unknown max length", fs.label, fs.typ).WithPath(v.Pointer).WithSubject(name))
	}
	if o, ok := v.Get("opts"); ok && o != nil {
		// Python's str.strip().split(' '): double spaces give empty words.
		fs.opts = strings.Split(strings.TrimSpace(pyStr(o)), " ")
	}
	if u, ok := v.Get("uuid"); ok && u != nil {
		fs.uuid = pyStr(u)
	} else {
		b.uuidCount++
		fs.uuid = b.p.uuid(b.uuidCount, name)
	}
	return &node{name: name, plugin: PluginMkfs, kind: layout.KindMkfs, ptr: v.Pointer, fs: fs, from: []string{fs.base}, basePtr: v.Pointer + "/base"}, nil
}

func (b *builder) mountPlugin(name string, v *Map) (*node, *diag.Diagnostic) {
	mn := &mountNode{}
	for _, k := range []string{"base", "mount_point"} {
		if !v.Has(k) {
			return nil, errAt(v.Pointer, "MountPoint config needs [%s]", k)
		}
	}
	mn.base = pyStr(v.vals["base"])
	mn.mountPoint = pyStr(v.vals["mount_point"])
	for _, mp := range b.mountsSort {
		if mp[0] == mn.mountPoint {
			return nil, dsubject(errAt(v.Pointer+"/mount_point", "Mount point [%s] specified more than once", mn.mountPoint), name)
		}
	}
	b.mountsSort = append(b.mountsSort, [2]string{mn.mountPoint, name})
	sort.SliceStable(b.mountsSort, func(i, j int) bool { return b.mountsSort[i][0] < b.mountsSort[j][0] })
	return &node{name: name, plugin: PluginMount, kind: layout.KindMount, ptr: v.Pointer, mount: mn, basePtr: v.Pointer + "/base"}, nil
}

func (b *builder) fstabPlugin(name string, v *Map) (*node, *diag.Diagnostic) {
	if !v.Has("base") {
		return nil, errAt(v.Pointer, "fstab %s needs a 'base' (KeyError: 'base')", name)
	}
	fn := &fstabNode{base: pyStr(v.vals["base"]), options: "defaults", fsckPassno: 2}
	if o, ok := v.Get("options"); ok {
		fn.options = pyStr(o)
	}
	var err error
	if d, ok := v.Get("dump-freq"); ok {
		if fn.dumpFreq, err = intValue(d); err != nil {
			return nil, errAt(v.Pointer+"/dump-freq", "fstab %s: dump-freq must be an integer, got %s", name, pyRepr(d))
		}
	}
	if p, ok := v.Get("fsck-passno"); ok {
		if fn.fsckPassno, err = intValue(p); err != nil {
			return nil, errAt(v.Pointer+"/fsck-passno", "fstab %s: fsck-passno must be an integer, got %s", name, pyRepr(p))
		}
	}
	return &node{name: name, plugin: PluginFstab, kind: layout.KindFstab, ptr: v.Pointer, fstab: fn, from: []string{fn.base}, basePtr: v.Pointer + "/base"}, nil
}

func intValue(v any) (int64, error) {
	switch t := v.(type) {
	case int64:
		return t, nil
	case string:
		var n int64
		_, err := fmt.Sscan(t, &n)
		return n, err
	}
	return 0, fmt.Errorf("not an integer")
}

// mountEdges adds, for every mount node, the edge from the mount before it
// in sorted mount-point order (DIB's MountPointNode.get_edges puts it
// before the base edge).
func (b *builder) mountEdges() {
	for _, n := range b.nodes {
		if n.mount == nil {
			continue
		}
		var from []string
		for i, mp := range b.mountsSort {
			if mp[0] == n.mount.mountPoint && i > 0 {
				from = append(from, b.mountsSort[i-1][1])
				break
			}
		}
		n.from = append(from, n.mount.base)
	}
}

// undefinedBase reports a base that names no node, with DIB's message, at
// the "base" that names it, with the nearest node name.
func (b *builder) undefinedBase(n *node, base string) *diag.Diagnostic {
	ptr := n.ptr
	if n.basePtr != "" && (n.mount == nil || base == n.mount.base) {
		ptr = n.basePtr
	}
	d := dsubject(errAt(ptr, "Edge not defined: %s->%s", base, n.name), n.name)
	names := make([]string, 0, len(b.nodes))
	for _, o := range b.nodes {
		if o != n {
			names = append(names, o.name)
		}
	}
	sort.Strings(names)
	d.Hint = fmt.Sprintf("no block-device node is named %q (%s has base %q; the nodes are %s)", base, n.name, base, strings.Join(names, ", "))
	if c := diag.Closest(base, names); c != "" {
		d.Hint = fmt.Sprintf("no block-device node is named %q; did you mean %q? (the nodes are %s)", base, c, strings.Join(names, ", "))
	}
	return d
}

// link is the second half of DIB's create_graph: edges are added node by
// node in insertion order (edges from, then edges to), each endpoint must
// exist; then the creation order is computed.
func (b *builder) link() (*Graph, *diag.Diagnostic) {
	b.mountEdges()
	g := graph.New(graph.StringHash, graph.Directed())
	for _, n := range b.nodes {
		_ = g.AddVertex(n.name)
	}
	succ := make(map[string][]string, len(b.nodes))
	indeg := make(map[string]int, len(b.nodes))
	out := &Graph{}
	addEdge := func(from, to string) {
		err := g.AddEdge(from, to)
		if errors.Is(err, graph.ErrEdgeAlreadyExists) {
			return
		}
		succ[from] = append(succ[from], to)
		indeg[to]++
	}
	for _, n := range b.nodes {
		for _, f := range n.from {
			if _, ok := b.byName[f]; !ok {
				return nil, b.undefinedBase(n, f)
			}
			addEdge(f, n.name)
		}
		for _, t := range n.to {
			if _, ok := b.byName[t]; !ok {
				return nil, dsubject(errAt(n.ptr, "Edge not defined: %s->%s", n.name, t), n.name)
			}
			addEdge(n.name, t)
		}
	}
	for _, n := range b.nodes {
		out.Nodes = append(out.Nodes, GraphNode{Name: n.name, Plugin: n.plugin, Kind: n.kind})
		for _, t := range succ[n.name] {
			out.Edges = append(out.Edges, Edge{From: n.name, To: t})
		}
	}
	order, left := kahn(b.nodes, succ, indeg)
	if len(left) > 0 {
		msg := "Graph contains a cycle or graph changed during iteration"
		if sccs, err := graph.StronglyConnectedComponents(g); err == nil {
			for _, c := range sccs {
				if len(c) > 1 {
					sort.Strings(c)
					msg += ": " + strings.Join(c, ", ")
					break
				}
			}
		}
		return nil, errAt("", "%s", msg)
	}
	out.Order = order
	return out, nil
}

// kahn is networkx 2.8.8's topological_sort: Kahn's algorithm by
// generations. The first generation is the nodes without predecessors in
// insertion order; each next generation lists the children in the order
// they reach in-degree 0, walking the current generation in order and each
// node's successors in edge-insertion order. It returns the order and the
// nodes left over when there is a cycle.
func kahn(nodes []*node, succ map[string][]string, indeg map[string]int) (order, left []string) {
	deg := make(map[string]int, len(indeg))
	for k, v := range indeg {
		deg[k] = v
	}
	var gen []string
	for _, n := range nodes {
		if deg[n.name] == 0 {
			gen = append(gen, n.name)
		}
	}
	for len(gen) > 0 {
		var next []string
		for _, n := range gen {
			for _, c := range succ[n] {
				deg[c]--
				if deg[c] == 0 {
					next = append(next, c)
				}
			}
		}
		order = append(order, gen...)
		gen = next
	}
	if len(order) < len(nodes) {
		done := make(map[string]bool, len(order))
		for _, n := range order {
			done[n] = true
		}
		for _, n := range nodes {
			if !done[n.name] {
				left = append(left, n.name)
			}
		}
	}
	return order, left
}
