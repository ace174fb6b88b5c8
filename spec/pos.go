package spec

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"

	"github.com/dibuild/dib/spec/diag"
)

// position is a 1-based line and column in the Dibfile.
type position struct{ line, col int }

// node records where a JSON pointer's value is written and, when the value
// is a mapping member, where its key is.
type node struct {
	key, value position
}

// positions maps the JSON pointers of a document to source positions. It
// is built from the goccy AST, so positions are those of the user's file.
// A nil *positions locates nothing.
type positions struct {
	nodes map[string]node
}

// Locate returns the line and column of the value at a JSON pointer into
// the Dibfile ("/images/1/outputs/0/format"). A pointer that does not name
// a written value (a default, a value reached through an alias or a merge
// key) is located at its nearest written ancestor. It returns 0, 0 when
// nothing is known.
func (f *File) Locate(pointer string) (line, col int) {
	if f == nil {
		return 0, 0
	}
	return f.pos.Locate(pointer)
}

// Locate implements schema.Locator.
func (p *positions) Locate(pointer string) (line, col int) {
	n := p.lookup(pointer)
	return n.value.line, n.value.col
}

// LocateKey implements schema.Locator.
func (p *positions) LocateKey(pointer string) (line, col int) {
	n := p.lookup(pointer)
	if n.key.line > 0 {
		return n.key.line, n.key.col
	}
	return n.value.line, n.value.col
}

// lookup finds the node of pointer or of its nearest recorded ancestor.
func (p *positions) lookup(pointer string) node {
	if p == nil {
		return node{}
	}
	for {
		if n, ok := p.nodes[pointer]; ok {
			if pointer != "" || n.value.line > 0 {
				return n
			}
		}
		if pointer == "" {
			return node{}
		}
		i := strings.LastIndexByte(pointer, '/')
		if i < 0 {
			return node{}
		}
		pointer = pointer[:i]
	}
}

// escapePointer escapes one JSON pointer reference token (RFC 6901).
func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// indexer walks a goccy AST, recording the position of every pointer and
// reporting duplicate keys, all of them.
type indexer struct {
	file  string
	pos   *positions
	diags diag.Diagnostics
	depth int
}

func tokenPos(tk *token.Token) position {
	if tk == nil || tk.Position == nil {
		return position{}
	}
	return position{tk.Position.Line, tk.Position.Column}
}

// valuePos is where a value starts: a mapping at its first key, anything
// else at its own token.
func valuePos(n ast.Node) position {
	switch v := n.(type) {
	case nil:
		return position{}
	case *ast.MappingNode:
		if len(v.Values) > 0 && !v.IsFlowStyle {
			return valuePos(v.Values[0])
		}
		return tokenPos(v.Start)
	case *ast.MappingValueNode:
		if v.Key != nil {
			return tokenPos(v.Key.GetToken())
		}
		return tokenPos(v.Start)
	case *ast.SequenceNode:
		return tokenPos(v.Start)
	default:
		return tokenPos(n.GetToken())
	}
}

// keyString renders a mapping key the way goccy's decoder does when it
// builds a map[string]any, so that pointers agree with the decoded value.
func keyString(k ast.MapKeyNode) string {
	var v any
	if err := yaml.NodeToValue(k, &v); err != nil {
		return k.String()
	}
	switch s := v.(type) {
	case nil:
		return "null"
	case string:
		return s
	default:
		return fmt.Sprint(s)
	}
}

// maxDepth bounds the walk, like goccy's own decoder, so that deeply
// nested input cannot exhaust the stack.
const maxDepth = 10000

func (ix *indexer) walk(pointer string, n ast.Node, key position) {
	if n == nil {
		if key.line > 0 {
			ix.pos.nodes[pointer] = node{key: key, value: key}
		}
		return
	}
	ix.depth++
	defer func() { ix.depth-- }()
	if ix.depth > maxDepth {
		return
	}
	vp := valuePos(n)
	if vp.line == 0 {
		vp = key
	}
	ix.pos.nodes[pointer] = node{key: key, value: vp}
	switch v := n.(type) {
	case *ast.MappingNode:
		ix.walkPairs(pointer, v.Values)
	case *ast.MappingValueNode:
		ix.walkPairs(pointer, []*ast.MappingValueNode{v})
	case *ast.SequenceNode:
		for i, item := range v.Values {
			ix.walk(pointer+"/"+strconv.Itoa(i), item, position{})
		}
	case *ast.AnchorNode:
		ix.walk(pointer, v.Value, key)
	case *ast.TagNode:
		ix.walk(pointer, v.Value, key)
	}
}

func (ix *indexer) walkPairs(pointer string, pairs []*ast.MappingValueNode) {
	seen := map[string]position{}
	for _, kv := range pairs {
		if kv == nil || kv.Key == nil {
			continue
		}
		if kv.Key.IsMergeKey() {
			continue // merged members are located at the enclosing mapping
		}
		name := keyString(kv.Key)
		kp := tokenPos(kv.Key.GetToken())
		if first, dup := seen[name]; dup {
			ix.diags = append(ix.diags, diag.Errorf("duplicate key %q", name).
				At(ix.file, kp.line, kp.col).
				WithPath(pointer+"/"+escapePointer(name)).
				WithHint("%q is already set at line %d, column %d", name, first.line, first.col))
			continue
		}
		seen[name] = kp
		ix.walk(pointer+"/"+escapePointer(name), kv.Value, kp)
	}
}

// Document is a YAML document read with positions but not validated: the
// generic value (maps with string keys, slices, strings, int64/uint64,
// float64, booleans, nil) and a Locator for it. Tools reading other YAML
// formats (dib convert) use it to report positions the same way.
type Document struct {
	Value any
	pos   *positions
}

// Locate returns the position of the value at a JSON pointer (see File.Locate).
func (d *Document) Locate(pointer string) (line, col int) { return d.pos.Locate(pointer) }

// LocateKey returns the position of a member's key (see File.LocateKey).
func (d *Document) LocateKey(pointer string) (line, col int) { return d.pos.LocateKey(pointer) }

// ParseYAML reads one YAML document with positions, reporting syntax
// errors, every duplicate key and extra documents. The Document is nil when
// nothing could be read.
func ParseYAML(path string, src []byte) (doc *Document, ds diag.Diagnostics) {
	defer func() {
		if r := recover(); r != nil {
			doc = nil
			ds = append(ds, diag.Errorf("cannot read this file (internal error in the YAML reader: %v)", r).At(path, 1, 1))
		}
	}()
	v, pos, ds := parse(path, src)
	if v == nil && ds.HasErrors() {
		return nil, ds
	}
	return &Document{Value: v, pos: pos}, ds
}

// maxValues bounds the number of values a document may expand to through
// aliases. A Dibfile has a few hundred; the limit stops "billion laughs"
// documents before goccy expands them.
const maxValues = 100000

// expandedSize counts the values of n with every alias expanded, stopping
// early once the count passes maxValues. anchors holds the size of each
// anchor seen so far (aliases may only refer to earlier anchors).
func expandedSize(n ast.Node, anchors map[string]int, depth int) int {
	if n == nil || depth > maxDepth {
		return 0
	}
	total := 1
	add := func(m ast.Node) bool {
		total += expandedSize(m, anchors, depth+1)
		return total <= maxValues
	}
	switch v := n.(type) {
	case *ast.MappingNode:
		for _, kv := range v.Values {
			if !add(kv) {
				break
			}
		}
	case *ast.MappingValueNode:
		if add(v.Key) {
			add(v.Value)
		}
	case *ast.MappingKeyNode:
		add(v.Value)
	case *ast.SequenceNode:
		for _, item := range v.Values {
			if !add(item) {
				break
			}
		}
	case *ast.TagNode:
		add(v.Value)
	case *ast.AnchorNode:
		total = expandedSize(v.Value, anchors, depth+1)
		if v.Name != nil && v.Name.GetToken() != nil {
			anchors[v.Name.GetToken().Value] = total
		}
	case *ast.AliasNode:
		if v.Value != nil && v.Value.GetToken() != nil {
			total = anchors[v.Value.GetToken().Value]
		}
	}
	if total > maxValues {
		return maxValues + 1
	}
	return total
}

// CheckAliases reports a YAML document whose aliases expand to more than
// maxValues values (a "billion laughs" document), for the readers of
// element files that decode YAML without Load. src must be within
// limits.Default(). Syntax errors are left to the caller's reader.
func CheckAliases(path string, src []byte) diag.Diagnostics {
	if !bytes.Contains(src, []byte("*")) {
		return nil
	}
	file, err := parser.ParseBytes(bytes.TrimPrefix(src, []byte("\ufeff")), 0, parser.AllowDuplicateMapKey())
	if err != nil || file == nil {
		return nil
	}
	for _, d := range file.Docs {
		if d != nil && d.Body != nil && expandedSize(d.Body, map[string]int{}, 0) > maxValues {
			p := valuePos(d.Body)
			if p.line == 0 {
				p = position{1, 1}
			}
			return diag.Diagnostics{diag.Errorf("the document expands to more than %d values through aliases", maxValues).At(path, p.line, p.col).
				WithHint("check the anchors (&name) and aliases (*name)")}
		}
	}
	return nil
}
