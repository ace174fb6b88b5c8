// Package dibyaml converts files of diskimage-builder's own YAML front end
// (the `diskimage-builder` command, diskimage_builder/diskimage_builder.py)
// into Dibfiles, so existing users can move over.
//
// The input is validated with the rules of DIB's DIB_SCHEMA (embedded in
// dib-yaml.schema.json), merged exactly as DIB's build_commands merges it,
// mapped key by key to the Dibfile, written in a fixed key order and
// validated again with the Dibfile schema.
package dibyaml

import (
	_ "embed"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/dibuild/dib/schema"
	"github.com/dibuild/dib/spec"
	"github.com/dibuild/dib/spec/diag"
)

// SchemaID is the $id of the embedded copy of DIB's YAML schema.
const SchemaID = "https://dib.dev/schema/diskimage-builder-yaml.json"

//go:embed dib-yaml.schema.json
var schemaJSON []byte

var compiled = sync.OnceValues(func() (*schema.Schema, error) {
	return schema.Compile(SchemaID, schemaJSON)
})

// booleanKeys are the keys DIB's schema types as boolean. DIB reads YAML
// with PyYAML (YAML 1.1), where yes/no/on/off are booleans too.
var booleanKeys = map[string]bool{
	"ramdisk": true, "uncompressed": true, "clear": true, "checksum": true,
	"no-tmpfs": true, "offline": true, "skip-base": true,
}

// entry is one image definition with the pointer of each of its keys, so
// that warnings about merged values point at the line that wrote them.
type entry struct {
	name   string
	values map[string]any
	where  map[string]string
}

// Convert turns a diskimage-builder YAML file into Dibfile YAML. path names
// the input in diagnostics and in the header comment. Warnings (values
// converted with a change of meaning, keys without equivalent) come back
// with the output; on any error the output is nil.
func Convert(path string, src []byte) ([]byte, diag.Diagnostics) {
	doc, ds := spec.ParseYAML(path, src)
	if ds.HasErrors() || doc == nil {
		ds.Sort()
		return nil, ds
	}
	sch, err := compiled()
	if err != nil {
		return nil, ds.Append(diag.Errorf("internal error: %v", err))
	}
	value := yaml11Booleans(doc.Value)
	if vds := sch.Validate(path, value, doc); len(vds) > 0 {
		if _, isMap := value.(map[string]any); isMap {
			for i := range vds {
				if vds[i].Path == "" {
					vds[i].Hint = "a diskimage-builder YAML file is a list of image definitions; if this is already a Dibfile, check it with `dib validate`"
				}
			}
		}
		ds = append(ds, vds...)
		ds.Sort()
		return nil, ds
	}
	list, _ := value.([]any)
	images := merge(list)
	if len(images) == 0 {
		ds = append(ds, diag.Errorf("the file defines no image").At(path, 1, 1))
		return nil, ds
	}
	c := &converter{path: path, doc: doc}
	out := c.render(images)
	ds = append(ds, c.ds...)
	return c.check(out, ds)
}

// check loads a converted Dibfile with the real loader: the result must
// be valid. Its errors are reported at the input: the file's first line,
// or the flag of a command line that gave the value.
func (c *converter) check(out []byte, ds diag.Diagnostics) ([]byte, diag.Diagnostics) {
	if _, lds := spec.Load("converted Dibfile", out, nil); lds.HasErrors() {
		for _, d := range lds {
			if d.Severity != diag.Error {
				continue
			}
			if c.doc == nil {
				key, _, _ := strings.Cut(strings.TrimPrefix(d.Path, "/"), "/")
				if k, ok := dibYAMLKey[key]; ok {
					key = k
				}
				msg := d.Message
				if flag := c.flagOf[key]; flag != "" {
					msg = flag + ": " + msg
				}
				ds = append(ds, diag.Errorf("%s", msg).At(c.path, 0, 0).WithHint("%s", d.Hint))
				continue
			}
			ds = append(ds, diag.Errorf("cannot convert: the result would not be a valid Dibfile: %s", d.Message).At(c.path, 1, 1).WithHint("%s", d.Hint))
		}
	}
	ds.Sort()
	if ds.HasErrors() {
		return nil, ds
	}
	return out, ds
}

// yaml11Booleans reads yes/no/on/off (any case) as booleans for DIB's
// boolean keys, as PyYAML does.
func yaml11Booleans(v any) any {
	list, ok := v.([]any)
	if !ok {
		return v
	}
	for _, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			continue
		}
		for k, val := range m {
			s, isStr := val.(string)
			if !isStr || !booleanKeys[k] {
				continue
			}
			switch strings.ToLower(s) {
			case "yes", "on", "y":
				m[k] = true
			case "no", "off", "n":
				m[k] = false
			}
		}
	}
	return v
}

// merge applies DIB's build_commands rules: an entry without imagename
// inherits the previous entry's (the first default is "image"); entries
// with the same imagename merge into the first one, lists extended, dicts
// updated, scalars replaced; one image per distinct imagename, in
// first-seen order.
func merge(list []any) []*entry {
	var order []*entry
	byName := map[string]*entry{}
	name := "image"
	for i, item := range list {
		m, _ := item.(map[string]any)
		if n, ok := m["imagename"].(string); ok {
			name = n
		}
		e := byName[name]
		if e == nil {
			e = &entry{name: name, values: map[string]any{}, where: map[string]string{}}
			byName[name] = e
			order = append(order, e)
		}
		keys := slices.Sorted(maps.Keys(m))
		for _, k := range keys {
			v := m[k]
			ptr := "/" + strconv.Itoa(i) + "/" + k
			switch nv := v.(type) {
			case []any:
				old, _ := e.values[k].([]any)
				e.values[k] = append(append([]any(nil), old...), nv...)
			case map[string]any:
				old, _ := e.values[k].(map[string]any)
				upd := map[string]any{}
				for ok, ov := range old {
					upd[ok] = ov
				}
				for nk, nvv := range nv {
					upd[nk] = nvv
				}
				e.values[k] = upd
			default:
				e.values[k] = v
			}
			e.where[k] = ptr
		}
	}
	return order
}
