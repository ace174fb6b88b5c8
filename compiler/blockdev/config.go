// Package blockdev compiles a diskimage-builder block-device configuration
// (DIB_BLOCK_DEVICE_CONFIG, or an element's block-device-*.yaml) into the
// exact disk layout DIB would create, as data (compiler/plan/layout).
//
// The work is split like DIB's own block_device code:
//
//   - Parse / ParseYAML: check the top-level shape and convert the tree
//     syntax to the graph syntax (DIB's config_tree_to_graph): generated
//     names such as mkfs_root, mount_mkfs_root, fstab_mount_mkfs_root, base
//     inheritance, children before their parent.
//   - Compile: merge the root-filesystem parameters into mkfs_root (DIB's
//     _merge_into_config), build the node graph with DIB's nodes and edges
//     (create_graph), order it as networkx 2.8.8's topological_sort does,
//     and compute what cmd_create would write for a given image size:
//     partition tables (MBR written by DIB's own writer, GPT by sgdisk),
//     LVM, filesystems with labels and UUIDs, mounts and fstab lines.
//
// Compile is a pure function of the configuration and Params, so the
// runtime can call it again once the image size is known (see ImageSize).
//
// Presets: a preset name P (mbr, gpt, efi, efi-4k, efi-lvm) means the
// configuration file of element "block-device-P": block-device-${ARCH}.yaml
// when it exists, else block-device-default.yaml (DIB's
// block-device element logic). When no element provides one, DIB writes
// FallbackConfig.
//
// Errors carry the JSON pointer (Diagnostic.Path) of the offending value,
// relative to the configuration's root; Relocate turns them into Dibfile
// positions.
package blockdev

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/dibuild/dib/compiler/internal/pyrepr"
	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/spec/diag"
)

// Plugin names DIB registers (diskimage_builder.block_device.plugin).
const (
	PluginLocalLoop    = "local_loop"
	PluginPartitioning = "partitioning"
	PluginLVM          = "lvm"
	PluginMkfs         = "mkfs"
	PluginMount        = "mount"
	PluginFstab        = "fstab"
)

func isPlugin(k string) bool {
	switch k {
	case PluginLocalLoop, PluginPartitioning, PluginLVM, PluginMkfs, PluginMount, PluginFstab:
		return true
	}
	return false
}

// FallbackConfig is the configuration DIB's block_device_create_config_file
// writes when no element provides one (layout.FallbackConfig).
const FallbackConfig = layout.FallbackConfig

// Map is a YAML/JSON mapping that keeps its key order, as Python dicts do:
// DIB's normalisation emits keys and children in that order.
type Map struct {
	keys []string
	vals map[string]any
	// Pointer is the JSON pointer of this mapping in the parsed input
	// ("" for mappings DIB's normalisation creates).
	Pointer string
}

// NewMap returns an empty Map.
func NewMap() *Map { return &Map{vals: map[string]any{}} }

// Keys returns the keys in order.
func (m *Map) Keys() []string { return m.keys }

// Len is the number of keys.
func (m *Map) Len() int { return len(m.keys) }

// Get returns the value of k and whether it is present.
func (m *Map) Get(k string) (any, bool) {
	v, ok := m.vals[k]
	return v, ok
}

// Has reports whether k is present.
func (m *Map) Has(k string) bool { _, ok := m.vals[k]; return ok }

// Set sets k, appending it when new (a Python dict keeps the position of an
// existing key).
func (m *Map) Set(k string, v any) {
	if _, ok := m.vals[k]; !ok {
		m.keys = append(m.keys, k)
	}
	m.vals[k] = v
}

// MarshalJSON writes the mapping with its keys in order.
func (m *Map) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range m.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		vb, err := json.Marshal(m.vals[k])
		if err != nil {
			return nil, err
		}
		b.Write(vb)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

// Entry is one entry of a graph-syntax configuration: a plugin name and its
// values (which include name and, usually, base).
type Entry struct {
	Plugin string
	Values *Map
}

// Name returns the entry's name ("" when missing or not a string).
func (e Entry) Name() string { s, _ := e.Values.vals["name"].(string); return s }

// MarshalJSON writes the entry as DIB's {plugin: values}.
func (e Entry) MarshalJSON() ([]byte, error) {
	m := NewMap()
	m.Set(e.Plugin, e.Values)
	return m.MarshalJSON()
}

// Config is a parsed block-device configuration in graph syntax, in DIB's
// normalised order.
type Config struct {
	// Syntax is "graph" when the input was already in graph syntax (the
	// normalisation left it unchanged), else "tree".
	Syntax  string
	Entries []Entry
}

// clone deep-copies the configuration, so Compile never changes its input.
func (c *Config) clone() *Config {
	out := &Config{Syntax: c.Syntax, Entries: make([]Entry, len(c.Entries))}
	for i, e := range c.Entries {
		out.Entries[i] = Entry{Plugin: e.Plugin, Values: cloneValue(e.Values).(*Map)}
	}
	return out
}

func cloneValue(v any) any {
	switch t := v.(type) {
	case *Map:
		m := &Map{keys: append([]string(nil), t.keys...), vals: make(map[string]any, len(t.vals)), Pointer: t.Pointer}
		for k, x := range t.vals {
			m.vals[k] = cloneValue(x)
		}
		return m
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = cloneValue(x)
		}
		return out
	}
	return v
}

// normalizeValue converts decoded YAML/JSON into Map / []any / string /
// int64 / float64 / bool / nil, recording JSON pointers. Unordered Go maps
// get their keys sorted (the order of the source is lost there).
func normalizeValue(v any, ptr string) any {
	switch t := v.(type) {
	case *Map:
		m := NewMap()
		m.Pointer = ptr
		for _, k := range t.keys {
			m.Set(k, normalizeValue(t.vals[k], ptr+"/"+escapePointer(k)))
		}
		return m
	case map[string]any:
		keys := slices.Sorted(maps.Keys(t))
		m := NewMap()
		m.Pointer = ptr
		for _, k := range keys {
			m.Set(k, normalizeValue(t[k], ptr+"/"+escapePointer(k)))
		}
		return m
	case map[any]any:
		keys := make([]string, 0, len(t))
		byKey := map[string]any{}
		for k, x := range t {
			ks := fmt.Sprint(k)
			keys = append(keys, ks)
			byKey[ks] = x
		}
		sort.Strings(keys)
		m := NewMap()
		m.Pointer = ptr
		for _, k := range keys {
			m.Set(k, normalizeValue(byKey[k], ptr+"/"+escapePointer(k)))
		}
		return m
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = normalizeValue(x, ptr+"/"+strconv.Itoa(i))
		}
		return out
	case []string:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = x
		}
		return out
	case int:
		return int64(t)
	case int32:
		return int64(t)
	case uint32:
		return int64(t)
	case uint64:
		if t > math.MaxInt64 {
			return float64(t)
		}
		return int64(t)
	case float32:
		return float64(t)
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	}
	if om, ok := orderedMap(v); ok {
		return normalizeValue(om, ptr)
	}
	return v
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// Parse checks a decoded configuration (a list of single-key mappings, as
// goccy/go-yaml or encoding/json decode it; ordered yaml.MapSlice values
// keep DIB's key order) and converts it to graph syntax like DIB's
// config_tree_to_graph.
func Parse(v any) (*Config, diag.Diagnostics) {
	var ds diag.Diagnostics
	root := normalizeValue(v, "")
	list, ok := root.([]any)
	if !ok {
		// DIB iterates the top level; anything but a list of entries is
		// unusable.
		ds = append(ds, diag.Errorf("block-device config must be a list of entries, got %s", pyRepr(root)).WithPath(""))
		return nil, ds
	}
	cfg := &Config{}
	for i, e := range list {
		ptr := "/" + strconv.Itoa(i)
		m, ok := e.(*Map)
		if !ok {
			ds = append(ds, diag.Errorf("Config entry not a dict: %s", pyStr(e)).WithPath(ptr))
			return nil, ds
		}
		if m.Len() != 1 {
			ds = append(ds, diag.Errorf("Config entry top-level should be a single dict: %s", pyRepr(m)).WithPath(ptr))
			return nil, ds
		}
		if !isPlugin(m.keys[0]) {
			ds = append(ds, diag.Errorf("Config entry is not a plugin value: %s", pyRepr(m)).
				WithPath(ptr+"/"+escapePointer(m.keys[0])).
				WithHint("known plugins: local_loop, partitioning, lvm, mkfs, mount, fstab"))
			return nil, ds
		}
		out, d := recurse(m.keys[0], m.vals[m.keys[0]], nil)
		if d != nil {
			ds = append(ds, *d)
			return nil, ds
		}
		cfg.Entries = append(cfg.Entries, out...)
	}
	cfg.Syntax = "tree"
	if sameAsInput(list, cfg.Entries) {
		cfg.Syntax = "graph"
	}
	return cfg, ds
}

// recurse is DIB's recurse_config: it returns the flat entries of one
// (possibly nested) plugin value, children before the entry itself.
func recurse(key string, raw any, parentBase any) ([]Entry, *diag.Diagnostic) {
	values, ok := raw.(*Map)
	if !ok {
		d := diag.Errorf("the value of %q must be a mapping, got %s", key, pyRepr(raw))
		return nil, &d
	}
	this := NewMap()
	this.Pointer = values.Pointer
	if b, ok := values.Get("base"); ok {
		this.Set("base", b)
	} else if parentBase != nil {
		this.Set("base", parentBase)
	}
	if n, ok := values.Get("name"); ok {
		this.Set("name", n)
	} else {
		b, ok := this.Get("base")
		if !ok {
			d := diag.Errorf("%s entry has neither 'name' nor 'base': DIB derives the name %s_<base> and fails (KeyError: 'base')", key, key).
				WithPath(values.Pointer).WithHint("give the entry a name")
			return nil, &d
		}
		this.Set("name", key+"_"+pyStr(b))
	}
	var out []Entry
	for _, nk := range values.keys {
		nv := values.vals[nk]
		switch {
		case nk == "partitions":
			parts, ok := nv.([]any)
			if !ok {
				d := diag.Errorf("'partitions' must be a list, got %s", pyRepr(nv)).WithPath(values.Pointer + "/partitions")
				return nil, &d
			}
			var list []any
			for _, p := range parts {
				pm, ok := p.(*Map)
				if !ok {
					d := diag.Errorf("a partition must be a mapping, got %s", pyRepr(p)).WithPath(values.Pointer + "/partitions")
					return nil, &d
				}
				np := NewMap()
				np.Pointer = pm.Pointer
				for _, pk := range pm.keys {
					pv := pm.vals[pk]
					if isPlugin(pk) {
						pname, ok := pm.Get("name")
						if !ok {
							d := diag.Errorf("partition has no 'name' (KeyError: 'name')").WithPath(pm.Pointer)
							return nil, &d
						}
						sub, d := recurse(pk, pv, pname)
						if d != nil {
							return nil, d
						}
						out = append(out, sub...)
					} else {
						np.Set(pk, pv)
					}
				}
				b, ok := this.Get("base")
				if !ok {
					d := diag.Errorf("%s entry with partitions has no 'base' (KeyError: 'base')", key).WithPath(values.Pointer)
					return nil, &d
				}
				np.Set("base", b)
				list = append(list, np)
			}
			this.Set("partitions", list)
		case isPlugin(nk):
			sub, d := recurse(nk, nv, this.vals["name"])
			if d != nil {
				return nil, d
			}
			out = append(out, sub...)
		default:
			this.Set(nk, nv)
		}
	}
	return append(out, Entry{Plugin: key, Values: this}), nil
}

// sameAsInput reports whether normalisation returned the input unchanged
// (DIB's test for graph syntax): equal values, key order aside, as Python
// compares dicts.
func sameAsInput(in []any, out []Entry) bool {
	if len(in) != len(out) {
		return false
	}
	a, err1 := json.Marshal(in)
	b, err2 := json.Marshal(out)
	if err1 != nil || err2 != nil {
		return false
	}
	var av, bv any
	if json.Unmarshal(a, &av) != nil || json.Unmarshal(b, &bv) != nil {
		return false
	}
	return reflect.DeepEqual(av, bv)
}

// pyRepr renders a value as Python's repr would (DIB puts reprs of config
// entries in its error messages).
func pyRepr(v any) string {
	switch t := v.(type) {
	case nil:
		return "None"
	case string:
		return pyrepr.String(t)
	case bool:
		if t {
			return "True"
		}
		return "False"
	case int64:
		return strconv.FormatInt(t, 10)
	case float64:
		return pyFloat(t)
	case *Map:
		var b strings.Builder
		b.WriteByte('{')
		for i, k := range t.keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(pyrepr.String(k))
			b.WriteString(": ")
			b.WriteString(pyRepr(t.vals[k]))
		}
		b.WriteByte('}')
		return b.String()
	case []any:
		parts := make([]string, len(t))
		for i, x := range t {
			parts[i] = pyRepr(x)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return fmt.Sprint(v)
}

// pyStr renders a value as Python's str would.
func pyStr(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return pyRepr(v)
}

func pyFloat(f float64) string {
	if math.IsInf(f, 1) {
		return "inf"
	}
	if math.IsInf(f, -1) {
		return "-inf"
	}
	if math.IsNaN(f) {
		return "nan"
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eIn") {
		s += ".0"
	}
	return s
}
