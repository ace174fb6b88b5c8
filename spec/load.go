package spec

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/dibuild/dib/schema"
	"github.com/dibuild/dib/spec/diag"
	"github.com/dibuild/dib/spec/limits"
)

// Load parses, validates and decodes a Dibfile. path names the file in
// diagnostics (it is not read); src is its content. lookupEnv resolves
// "from-env" values (os.LookupEnv in the CLI); a variable it does not know
// is recorded as Missing, not reported, so a plan can be made without the
// secret. lookupEnv may be nil.
//
// Every problem is reported, sorted by position: YAML syntax errors,
// duplicate keys, schema violations, then the checks the schema cannot
// express. When any of them is an error, the returned File is nil.
// Warnings come back with a non-nil File.
func Load(path string, src []byte, lookupEnv func(string) (string, bool)) (f *File, ds diag.Diagnostics) {
	defer func() {
		// The YAML library is third-party code: never let a panic in it
		// escape to the user as a crash.
		if r := recover(); r != nil {
			f = nil
			ds = append(ds, diag.Errorf("cannot read this file (internal error in the YAML reader: %v)", r).At(path, 1, 1))
		}
	}()
	doc, pos, ds := parse(path, src)
	if doc == nil && ds.HasErrors() {
		ds.Sort()
		return nil, ds
	}
	sch, err := schema.Dibfile()
	if err != nil {
		return nil, ds.Append(diag.Errorf("internal error: %v", err))
	}
	// The schema's value rules (limits, value grammars) are checked again
	// by decode, which says more: their problems are reported only when
	// decode finds none, so that dib never accepts what the schema (and
	// with it an editor) refuses.
	sds, vds := sch.Check(path, doc, pos)
	if _, isList := doc.([]any); isList {
		for i := range sds {
			if sds[i].Path == "" {
				sds[i].Hint = "this looks like a diskimage-builder YAML file; convert it with `dib convert`"
			}
		}
	}
	ds = append(ds, sds...)
	if ds.HasErrors() {
		ds.Sort()
		return nil, ds
	}
	f, more := decode(path, doc.(map[string]any), pos, lookupEnv)
	ds = append(ds, more...)
	if !more.HasErrors() {
		ds = append(ds, vds...)
	}
	ds.Sort()
	if ds.HasErrors() {
		return nil, ds
	}
	return f, ds
}

// Parse reads YAML into a generic value (maps with string keys, slices,
// strings, int64/uint64/float64, booleans, nil) and the positions of its
// pointers. It reports syntax errors, duplicate keys and a file that is
// not exactly one YAML document. The value is nil when it could not be
// read at all.
func parse(path string, src []byte) (any, *positions, diag.Diagnostics) {
	pos := &positions{nodes: map[string]node{}}
	// The limits come first: the YAML reader's time and memory grow with
	// the square of the nesting depth and of a mapping's keys.
	if ds := limits.Default().Check(path, src); ds.HasErrors() {
		return nil, pos, ds
	}
	// A byte order mark is not part of the text (editors on Windows
	// write one); the reader would take it for the first key's start.
	src = bytes.TrimPrefix(src, []byte("\ufeff"))
	file, err := parser.ParseBytes(src, 0, parser.AllowDuplicateMapKey()) // the indexer reports every duplicate
	if err != nil {
		return nil, pos, diag.Diagnostics{yamlDiag(path, err)}
	}
	var bodies []*ast.DocumentNode
	for _, d := range file.Docs {
		if d == nil || d.Body == nil {
			continue
		}
		if _, ok := d.Body.(*ast.DirectiveNode); ok {
			continue // %YAML or %TAG before the document's "---"
		}
		bodies = append(bodies, d)
	}
	if len(bodies) == 0 {
		return nil, pos, diag.Diagnostics{diag.Errorf("the file is empty").At(path, 1, 1).
			WithHint("a Dibfile is a YAML mapping, e.g. `distro: debian-minimal`")}
	}
	var ds diag.Diagnostics
	if len(bodies) > 1 {
		p := valuePos(bodies[1].Body)
		if bodies[1].Start != nil {
			p = tokenPos(bodies[1].Start)
		}
		ds = append(ds, diag.Errorf("a Dibfile holds one YAML document; a second one starts here").At(path, p.line, p.col).
			WithHint("list several images under \"images:\" instead"))
	}
	if bytes.IndexByte(src, '*') >= 0 && expandedSize(bodies[0].Body, map[string]int{}, 0) > maxValues {
		return nil, pos, append(ds, diag.Errorf("the document expands to more than %d values through aliases", maxValues).At(path, 1, 1).
			WithHint("a Dibfile needs far fewer; check the anchors (&name) and aliases (*name)"))
	}
	ix := &indexer{file: path, pos: pos}
	ix.walk("", bodies[0].Body, position{})
	ds = append(ds, ix.diags...)
	var v any
	if err := yaml.NodeToValue(bodies[0].Body, &v, yaml.AllowDuplicateMapKey()); err != nil {
		return nil, pos, append(ds, yamlDiag(path, err))
	}
	return normalize(v, 0), pos, ds
}

// yamlDiag turns a goccy error into a diagnostic at its token.
func yamlDiag(path string, err error) diag.Diagnostic {
	var ye yaml.Error
	if errors.As(err, &ye) {
		d := diag.Errorf("%s", ye.GetMessage())
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			return d.At(path, tk.Position.Line, tk.Position.Column)
		}
		return d.At(path, 1, 1)
	}
	return diag.Errorf("%v", err).At(path, 1, 1)
}

// normalize converts goccy's values to the JSON data model the schema
// validator accepts: every map keyed by string, every integer int64 or
// uint64, anything else (timestamps, binary) as its string form.
func normalize(v any, depth int) any {
	if depth > maxDepth {
		return nil
	}
	switch x := v.(type) {
	case nil, bool, string, int64, uint64:
		return x
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return strconv.FormatFloat(x, 'g', -1, 64)
		}
		return x
	case float32:
		return normalize(float64(x), depth)
	case int:
		return int64(x)
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case uint:
		return uint64(x)
	case uint8:
		return uint64(x)
	case uint16:
		return uint64(x)
	case uint32:
		return uint64(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e, depth+1)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e, depth+1)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		keys := make([]string, 0, len(x))
		vals := map[string]any{}
		for k, e := range x {
			ks := fmt.Sprint(k)
			keys = append(keys, ks)
			vals[ks] = e
		}
		sort.Strings(keys)
		for _, k := range keys {
			out[k] = normalize(vals[k], depth+1)
		}
		return out
	default:
		return fmt.Sprint(x)
	}
}
