package blockdev

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/internal/fixture"
	"github.com/dibuild/dib/spec/diag"
)

// oracleDir holds the recordings of upstream DIB (testdata/oracle of the
// repository, or $ORACLE_DIR).
func oracleDir(t testing.TB) string { return fixture.OracleDir(t) }

// decodeOrdered decodes JSON keeping object key order (as *Map).
func decodeOrdered(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return decodeValue(dec)
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			m := NewMap()
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				m.Set(kt.(string), v)
			}
			_, err := dec.Token()
			return m, err
		case '[':
			out := []any{}
			for dec.More() {
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				out = append(out, v)
			}
			_, err := dec.Token()
			return out, err
		}
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i, nil
		}
		f, _ := t.Float64()
		return f, nil
	}
	return tok, nil
}

// oracleCase is the part of an oracle file the test reads.
type oracleCase struct {
	Name             string          `json:"name"`
	Syntax           *string         `json:"syntax"`
	Commands         [][]string      `json:"commands"`
	UsesTestPlugins  bool            `json:"uses_test_plugins"`
	Error            *string         `json:"error"`
	ErrorStage       string          `json:"error_stage"`
	Input            json.RawMessage `json:"input"`
	Normalized       json.RawMessage `json:"normalized_graph_config"`
	Fatal            *string         `json:"disk_image_create_fatal"`
	Params           map[string]any  `json:"params"`
	Graph            *oracleGraph    `json:"graph"`
	CreationOrder    []string        `json:"creation_order"`
	PartitionTables  json.RawMessage `json:"partition_tables"`
	MountOrder       []string        `json:"mount_order"`
	SortedMountPoint [][]string      `json:"sorted_mount_points"`
	Fstab            []string        `json:"fstab"`
	GetVal           map[string]any  `json:"getval"`
}

type oracleGraph struct {
	Nodes []struct {
		Name   string `json:"name"`
		Plugin string `json:"plugin"`
	} `json:"nodes"`
	Edges [][2]string `json:"edges"`
}

// TestOracleBlockDevice compiles every oracle case with its params and
// compares what DIB computed. Not compared, because they are run-time
// device paths, not layout: getval image-block-device, image-block-devices
// and image-path, and the commands DIB ran.
func TestOracleBlockDevice(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(oracleDir(t), "block-device", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no oracle case in %s", filepath.Join(oracleDir(t), "block-device"))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var c oracleCase
			if err := json.Unmarshal(data, &c); err != nil {
				t.Fatal(err)
			}
			if c.UsesTestPlugins {
				t.Skip("uses DIB's unit-test plugins test_a/test_b, which only exist in DIB's test suite")
			}
			checkOracleCase(t, &c)
		})
	}
}

func checkOracleCase(t *testing.T, c *oracleCase) {
	in, err := decodeOrdered(c.Input)
	if err != nil {
		t.Fatal(err)
	}
	cfg, ds := Parse(in)
	if c.ErrorStage == "load" || c.ErrorStage == StageParse {
		if !ds.HasErrors() {
			t.Fatalf("Parse succeeded; DIB failed in %s with %s", c.ErrorStage, *c.Error)
		}
		checkMessage(t, ds, *c.Error)
		return
	}
	if ds.HasErrors() {
		t.Fatalf("Parse: %v", ds)
	}
	// normalized_graph_config: same values and same key order.
	want, err := decodeOrdered(c.Normalized)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON, _ := json.Marshal(want)
	gotJSON, _ := json.Marshal(cfg.Entries)
	if !bytes.Equal(wantJSON, gotJSON) {
		t.Errorf("normalized_graph_config:\n got %s\nwant %s", gotJSON, wantJSON)
	}
	if c.Syntax != nil && *c.Syntax != cfg.Syntax {
		t.Errorf("syntax %q, DIB %q", cfg.Syntax, *c.Syntax)
	}

	p := oracleParams(t, c.Params)
	r := compile(cfg, p)
	// dib's own checks (check.go) must pass every configuration an
	// element ships; DIB's unit-test configs may use values no build
	// could (uuid: root-uuid-1234).
	if !strings.HasPrefix(c.Name, "test-") && len(r.strict) > 0 {
		t.Errorf("dib rejects an element's configuration: %v", r.strict)
	}

	if c.Fatal != nil {
		found := false
		for _, d := range r.diags {
			if d.Severity == diag.Error && strings.Contains(d.Message, "getval root-") {
				found = true
			}
		}
		if !found {
			t.Errorf("DIB: %s; we report no getval error: %v", *c.Fatal, r.diags)
		}
	}
	if c.Error != nil {
		if r.stage != c.ErrorStage {
			t.Errorf("error stage %q, DIB %q (%s); diags %v", r.stage, c.ErrorStage, *c.Error, r.diags)
		}
		checkMessage(t, r.diags, *c.Error)
	} else if r.stage != "" {
		t.Fatalf("failed in %s: %v", r.stage, r.diags)
	}

	if c.Graph != nil {
		if r.graph == nil {
			t.Fatalf("no graph; DIB built one")
		}
		var gotNodes, wantNodes []string
		for _, n := range r.graph.Nodes {
			gotNodes = append(gotNodes, n.Plugin+":"+n.Name)
		}
		for _, n := range c.Graph.Nodes {
			wantNodes = append(wantNodes, n.Plugin+":"+n.Name)
		}
		eq(t, "graph nodes", gotNodes, wantNodes)
		var gotEdges [][2]string
		for _, e := range r.graph.Edges {
			gotEdges = append(gotEdges, [2]string{e.From, e.To})
		}
		eq(t, "graph edges", gotEdges, c.Graph.Edges)
		eq(t, "creation_order", r.graph.Order, c.CreationOrder)
	}
	if c.Error != nil {
		return
	}
	l := r.layout
	var order []string
	for _, s := range l.CreationOrder {
		order = append(order, s.Node)
	}
	eq(t, "layout creation order", order, c.CreationOrder)
	rev := append([]string(nil), c.CreationOrder...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	eq(t, "cleanup order", l.CleanupOrder, rev)

	if c.PartitionTables != nil {
		var wantPT any
		if err := json.Unmarshal(c.PartitionTables, &wantPT); err != nil {
			t.Fatal(err)
		}
		gotPT := sfdiskView(l)
		eq(t, "partition_tables", gotPT, wantPT)
	}

	var mountOrder []string
	var sorted [][]string
	for _, m := range l.Mounts {
		mountOrder = append(mountOrder, m.MountPoint)
		sorted = append(sorted, []string{m.MountPoint, m.Node})
	}
	eq(t, "mount_order", mountOrder, c.MountOrder)
	eq(t, "sorted_mount_points", sorted, c.SortedMountPoint)
	var fstab []string
	for _, e := range l.Fstab {
		fstab = append(fstab, e.Line)
	}
	eq(t, "fstab", fstab, c.Fstab)

	checkGetVal(t, l.GetVal, c.GetVal)
	checkCommands(t, l, c.Commands)
}

// checkCommands compares the mkfs and LVM commands DIB ran with the ones
// the layout implies (device paths aside): same filesystems with the same
// options, labels and UUIDs, same LVM volumes with the same sizes.
func checkCommands(t *testing.T, l *layout.Layout, cmds [][]string) {
	t.Helper()
	var want, got []string
	for _, c := range cmds {
		switch c[0] {
		case "mkfs", "mkswap", "lvcreate":
			want = append(want, strings.Join(c[:len(c)-1], " "))
		case "pvcreate":
			want = append(want, strings.Join(append([]string{"pvcreate"}, c[2:]...), " "))
		case "vgcreate":
			var opts []string
			for _, a := range c[2:] {
				if !strings.HasPrefix(a, "/dev/") {
					opts = append(opts, a)
				}
			}
			want = append(want, strings.Join(append([]string{"vgcreate", c[1]}, opts...), " "))
		}
	}
	fsDone := map[string]bool{}
	lvmCmds := func(lvm layout.LVM) {
		for _, pv := range lvm.PVs {
			got = append(got, strings.Join(append([]string{"pvcreate"}, pv.Options...), " "))
		}
		for _, vg := range lvm.VGs {
			got = append(got, strings.Join(append([]string{"vgcreate", vg.Node}, vg.Options...), " "))
		}
		for _, lv := range lvm.LVs {
			a := []string{"lvcreate", "--name", lv.Node}
			if lv.Type != "" {
				a = append(a, "--type", lv.Type)
			}
			if lv.ThinPool != "" {
				a = append(a, "--thin-pool", lv.ThinPool)
			}
			switch {
			case lv.Size != "" && lv.Type == layout.LVThin:
				a = append(a, "-V", fmt.Sprintf("%dB", lv.SizeBytes))
			case lv.Size != "":
				a = append(a, "-L", fmt.Sprintf("%dB", lv.SizeBytes))
			default:
				a = append(a, "-l", lv.Extents)
			}
			got = append(got, strings.Join(append(a, lv.Options...), " "))
		}
	}
	// Commands come in creation order.
	for _, s := range l.CreationOrder {
		switch s.Kind {
		case layout.KindLVM:
			for _, lvm := range l.LVM {
				if lvm.Node == s.Node {
					lvmCmds(lvm)
				}
			}
		case layout.KindMkfs:
			if fs := l.Filesystem(s.Node); fs != nil && !fsDone[s.Node] {
				fsDone[s.Node] = true
				got = append(got, strings.Join(fs.Command, " "))
			}
		}
	}
	eq(t, "mkfs/LVM commands", got, want)
}

func eq(t *testing.T, what string, got, want any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	var gv, wv any
	_ = json.Unmarshal(g, &gv)
	_ = json.Unmarshal(w, &wv)
	if !reflect.DeepEqual(gv, wv) {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

// checkGetVal compares the layout getval symbols; an oracle error
// {"error": "KeyError: 'label'"} must be an error of the same Python
// exception type.
func checkGetVal(t *testing.T, got layout.GetVal, want map[string]any) {
	t.Helper()
	values := map[string]string{"root-label": got.RootLabel, "root-fstype": got.RootFSType, "boot-label": got.BootLabel, "mount-points": got.MountPoints}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		w := want[k]
		if m, ok := w.(map[string]any); ok {
			we, _ := m["error"].(string)
			ge, ok := got.Errors[k]
			if !ok {
				t.Errorf("getval %s = %q; DIB fails with %s", k, values[k], we)
				continue
			}
			if exc(ge) != exc(we) {
				t.Errorf("getval %s fails with %q; DIB with %q", k, ge, we)
			}
			continue
		}
		if ge, ok := got.Errors[k]; ok {
			t.Errorf("getval %s fails with %q; DIB gives %q", k, ge, w)
			continue
		}
		if values[k] != w {
			t.Errorf("getval %s = %q, DIB %q", k, values[k], w)
		}
	}
}

// exc is the Python exception type of "Type: message".
func exc(s string) string {
	if i := strings.Index(s, ":"); i >= 0 {
		return s[:i]
	}
	return s
}

// checkMessage checks that our error means the same as DIB's: DIB's text
// (without the exception type) is in our message, except for the
// exceptions whose text says nothing (a bare AssertionError from the GPT
// size check, a struct.error from the MBR writer), where our message must
// carry the meaning.
func checkMessage(t *testing.T, ds diag.Diagnostics, dib string) {
	t.Helper()
	var msgs []string
	for _, d := range ds {
		if d.Severity == diag.Error {
			msgs = append(msgs, d.Message)
		}
	}
	all := strings.Join(msgs, "\n")
	typ, text, _ := strings.Cut(dib, ": ")
	var needle string
	switch {
	case typ == "AssertionError" && strings.TrimSpace(text) == "":
		needle = "requested size of the image is smaller than the block device configuration"
	case typ == "error":
		needle = text // struct.error text, which we quote
	case typ == "KeyError":
		needle = "KeyError: " + text
	default:
		needle = text
	}
	if !strings.Contains(all, needle) {
		t.Errorf("error %q does not carry DIB's %q", all, dib)
	}
}

func oracleParams(t *testing.T, m map[string]any) Params {
	t.Helper()
	var p Params
	if s, ok := m["image-size"].(string); ok {
		n, err := ParseSize(s)
		if err != nil {
			t.Fatal(err)
		}
		p.ImageSize = n
	}
	p.RootLabel, _ = m["root-label"].(string)
	p.RootFSType, _ = m["root-fs-type"].(string)
	p.RootFSOpts, _ = m["root-fs-opts"].(string)
	p.UUIDs = func(n int, _ string) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }
	return p
}

// sfdiskView renders the layout's tables the way the oracle recorded them
// from `sfdisk --json` (GUIDs and disk IDs left out, as the oracle removed
// them).
func sfdiskView(l *layout.Layout) map[string]any {
	out := map[string]any{}
	for _, img := range l.Images {
		out[img.Node] = map[string]any{"size_bytes": img.SizeBytes, "table": nil}
	}
	for _, pt := range l.PartitionTables {
		tbl := map[string]any{"unit": "sectors", "sectorsize": pt.SectorSize}
		type row struct {
			n int
			m map[string]any
		}
		var rows []row
		for _, p := range pt.Partitions {
			m := map[string]any{"node": p.DeviceNode, "start": p.Start, "size": p.Size, "start_bytes": p.StartBytes, "size_bytes": p.SizeBytes}
			if pt.Label == layout.LabelGPT {
				m["type"] = p.GPTType
				m["name"] = p.GPTName
			} else {
				m["type"] = fmt.Sprintf("%x", p.MBRType)
				if p.Boot {
					m["bootable"] = true
				}
			}
			rows = append(rows, row{p.Number, m})
		}
		if e := pt.Extended; e != nil {
			rows = append(rows, row{e.Number, map[string]any{"node": e.DeviceNode, "start": e.Start, "size": e.Size, "start_bytes": e.StartBytes, "size_bytes": e.SizeBytes, "type": fmt.Sprintf("%x", e.Type)}})
		}
		sort.Slice(rows, func(i, j int) bool { return rows[i].n < rows[j].n })
		var parts []any
		for _, r := range rows {
			parts = append(parts, r.m)
		}
		tbl["partitions"] = parts
		if pt.Label == layout.LabelGPT {
			tbl["label"] = "gpt"
			tbl["firstlba"] = pt.FirstUsableLBA
			tbl["lastlba"] = pt.LastUsableLBA
		} else {
			tbl["label"] = "dos"
		}
		out[pt.Base] = map[string]any{"size_bytes": pt.DiskSizeBytes, "table": tbl}
	}
	return out
}
