package blockdev

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/dibuild/dib/spec"
	"github.com/dibuild/dib/spec/diag"
	"github.com/dibuild/dib/spec/limits"
)

// orderedMap converts goccy's ordered mapping to a Map.
func orderedMap(v any) (*Map, bool) {
	ms, ok := v.(yaml.MapSlice)
	if !ok {
		return nil, false
	}
	m := NewMap()
	for _, it := range ms {
		m.Set(fmt.Sprint(it.Key), it.Value)
	}
	return m, true
}

// ParseYAML parses a block-device configuration file (DIB's
// DIB_BLOCK_DEVICE_CONFIG format) keeping its key order, and converts it to
// graph syntax. Diagnostics carry the file position (File is left empty
// for the caller to fill) as well as the JSON pointer.
func ParseYAML(src []byte) (*Config, diag.Diagnostics) {
	if ds := limits.Default().Check("", src); ds.HasErrors() {
		return nil, ds
	}
	if ds := spec.CheckAliases("", src); ds.HasErrors() {
		return nil, ds
	}
	src = bytes.TrimPrefix(src, []byte("\ufeff"))
	var v any
	if err := yaml.UnmarshalWithOptions(src, &v, yaml.UseOrderedMap()); err != nil {
		d := diag.Errorf("invalid YAML: %s", yamlMessage(err))
		var ye yaml.Error
		if errors.As(err, &ye) && ye.GetToken() != nil {
			d.Line, d.Col = ye.GetToken().Position.Line, ye.GetToken().Position.Column
		}
		return nil, diag.Diagnostics{d}
	}
	cfg, ds := Parse(v)
	if len(ds) > 0 {
		ds = Relocate(ds, "", "", YAMLLocator(src))
	}
	return cfg, ds
}

func yamlMessage(err error) string {
	var ye yaml.Error
	if errors.As(err, &ye) {
		return ye.GetMessage()
	}
	return err.Error()
}

// YAMLLocator returns a function mapping a JSON pointer into the YAML
// document src to its line and column (0, 0 when not found).
func YAMLLocator(src []byte) func(pointer string) (line, col int) {
	if limits.Default().Check("", src).HasErrors() {
		return func(string) (int, int) { return 0, 0 }
	}
	src = bytes.TrimPrefix(src, []byte("\ufeff"))
	file, err := parser.ParseBytes(src, 0)
	return func(pointer string) (int, int) {
		if err != nil {
			return 0, 0
		}
		if file == nil || len(file.Docs) == 0 || file.Docs[0].Body == nil {
			return 1, 1 // an empty document: the problem is the whole file
		}
		for p := pointer; ; {
			if n := lookupPointer(file.Docs[0].Body, p); n != nil {
				if tk := n.GetToken(); tk != nil {
					return tk.Position.Line, tk.Position.Column
				}
			}
			i := strings.LastIndexByte(p, '/')
			if i < 0 {
				return 0, 0
			}
			p = p[:i] // fall back to the closest existing parent
		}
	}
}

// lookupPointer walks the YAML AST along a JSON pointer. For a mapping key
// it returns the key node, so errors point at "size:" rather than its value.
func lookupPointer(n ast.Node, pointer string) ast.Node {
	if pointer == "" {
		return n
	}
	parts := strings.Split(pointer[1:], "/")
	for i, raw := range parts {
		part := strings.ReplaceAll(strings.ReplaceAll(raw, "~1", "/"), "~0", "~")
		for {
			if t, ok := n.(*ast.TagNode); ok {
				n = t.Value
				continue
			}
			if a, ok := n.(*ast.AnchorNode); ok {
				n = a.Value
				continue
			}
			break
		}
		switch t := n.(type) {
		case *ast.SequenceNode:
			idx, err := strconv.Atoi(part)
			if err != nil || idx < 0 || idx >= len(t.Values) {
				return nil
			}
			n = t.Values[idx]
		case *ast.MappingNode:
			var found ast.Node
			for _, kv := range t.Values {
				if keyText(kv.Key) == part {
					if i == len(parts)-1 {
						return kv.Key
					}
					found = kv.Value
					break
				}
			}
			if found == nil {
				return nil
			}
			n = found
		case *ast.MappingValueNode:
			if keyText(t.Key) != part {
				return nil
			}
			if i == len(parts)-1 {
				return t.Key
			}
			n = t.Value
		default:
			return nil
		}
	}
	return n
}

func keyText(k ast.MapKeyNode) string {
	if s, ok := k.(*ast.StringNode); ok {
		return s.Value
	}
	return strings.TrimSpace(k.String())
}

// Relocate returns ds with every diagnostic that has a Path prefixed by
// prefix (the pointer of the block-device configuration inside a larger
// document), its File set to file when empty, and its Line/Col looked up
// with locate (which takes the full pointer) when unknown. locate may be
// nil.
func Relocate(ds diag.Diagnostics, prefix, file string, locate func(pointer string) (line, col int)) diag.Diagnostics {
	out := make(diag.Diagnostics, len(ds))
	for i, d := range ds {
		if d.Path != "" || prefix != "" {
			d.Path = prefix + d.Path
		}
		if d.File == "" {
			d.File = file
		}
		if d.Line == 0 && locate != nil {
			d.Line, d.Col = locate(d.Path)
		}
		out[i] = d
	}
	return out
}
