// Package schema holds the JSON Schema of the Dibfile, the single source of
// truth of the format, and validates documents against JSON Schemas with
// diagnostics that point into the user's file.
//
// Validation reports every problem at once: it walks all leaf causes of
// santhosh-tekuri/jsonschema's error tree, turns each into a message a user
// understands (unknown key with "did you mean", wrong type, value outside an
// enum with the allowed values, missing keys), locates it through a Locator
// (the caller holds the source) and sorts the result.
package schema

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v5"

	"github.com/dibuild/dib/spec/diag"
)

// DibfileID is the stable $id of the Dibfile schema, usable in editors:
// "# yaml-language-server: $schema=https://dib.dev/schema/dibfile/v1.json".
const DibfileID = "https://dib.dev/schema/dibfile/v1.json"

// ModelinePath is the schema file the Dibfiles dib writes name in their
// yaml-language-server modeline: a path relative to the Dibfile, so that
// editors find it offline once `dib schema --output dibfile.schema.json`
// (or `dib init`) has written it there.
const ModelinePath = "dibfile.schema.json"

//go:embed dibfile.schema.json
var dibfileJSON []byte

// DibfileJSON returns the text of the Dibfile schema, as `dib schema` prints it.
func DibfileJSON() []byte { return bytes.Clone(dibfileJSON) }

// Locator maps JSON pointers into a validated document to source positions.
type Locator interface {
	// Locate returns the position of the value at pointer (or of its
	// nearest located ancestor); 0, 0 when unknown.
	Locate(pointer string) (line, col int)
	// LocateKey returns the position of the key of a mapping member, or
	// Locate's answer for anything else.
	LocateKey(pointer string) (line, col int)
}

// Schema is a compiled JSON Schema together with its source, which is read
// back to explain errors (allowed keys, enums, custom messages).
type Schema struct {
	id       string
	compiled *jsonschema.Schema
	doc      any
}

// Compile compiles a draft 2020-12 schema whose $id is id. Meta-schemas are
// bundled with the library: nothing is fetched.
func Compile(id string, src []byte) (*Schema, error) {
	var doc any
	if err := json.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("schema %s: %w", id, err)
	}
	c := jsonschema.NewCompiler()
	c.Draft = jsonschema.Draft2020
	if err := c.AddResource(id, bytes.NewReader(src)); err != nil {
		return nil, fmt.Errorf("schema %s: %w", id, err)
	}
	sch, err := c.Compile(id)
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", id, err)
	}
	return &Schema{id: id, compiled: sch, doc: doc}, nil
}

// dibfile compiles the embedded Dibfile schema once per process; the
// compiled schema is immutable and safe for concurrent use.
var dibfile = sync.OnceValues(func() (*Schema, error) {
	s, err := Compile(DibfileID, dibfileJSON)
	if err != nil {
		return nil, err
	}
	s.addMessages(dibfileMessages)
	return s, nil
})

// message is dib's wording of a schema rule, for the owner schema at a
// pointer: "errorMessage" replaces the validator's words for the whole
// subschema, "patternErrorMessage" explains its pattern. They live here,
// not in the schema file, so that the file is plain draft 2020-12 that
// strict validators (ajv) and editors accept.
type message struct{ pointer, kind, text string }

var dibfileMessages = []message{
	{"/then/propertyNames", "errorMessage", `next to "images", only "defaults" is allowed at the top level`},
	{"/$defs/element-name", "patternErrorMessage", "an element name is letters, digits, '.', '_' and '-'"},
	{"/$defs/env-name", "patternErrorMessage", "a variable name is letters, digits and '_', not starting with a digit"},
	{"/$defs/image-keys/properties/name", "patternErrorMessage", "an image name is letters, digits, '.', '_', '+' and '-', without '/'"},
	{"/$defs/image-keys/properties/distro", "patternErrorMessage", "an element name is letters, digits, '.', '_' and '-'"},
	{"/$defs/image-keys/properties/env/additionalProperties", "errorMessage", `set exactly one of "from-env" and "value"`},
	{"/$defs/image-keys/properties/block-device/items", "errorMessage", "each block-device entry is a mapping with exactly one key naming a plugin (local_loop, partitioning, lvm, mkfs, mount, fstab)"},
	{"/$defs/image-keys/properties/image-size", "patternErrorMessage", "a size is a number and a unit: B, K/KB, KiB, M/MB, MiB, G/GB, GiB, T/TB, TiB (K, M, G, T are decimal, as DIB)"},
	{"/$defs/image-keys/properties/outputs/items/properties/target", "patternErrorMessage", "a docker target is repository:tag, without spaces"},
}

// addMessages puts dib's messages into the schema document the reporter
// reads (never into the file). A pointer that names no schema object is a
// programming error, caught by the package's tests.
func (s *Schema) addMessages(ms []message) {
	for _, m := range ms {
		if owner, ok := s.node(m.pointer).(map[string]any); ok {
			owner[m.kind] = m.text
		}
	}
}

// Dibfile returns the compiled Dibfile schema.
func Dibfile() (*Schema, error) { return dibfile() }

// ValueRules is the schema pointer under which a schema keeps its value
// rules: limits and value grammars (lengths, counts, patterns, per-format
// enums) that a Go check of the schema's user also enforces, with words
// that say more than a schema can. Check reports their problems apart.
const ValueRules = "/$defs/value-rules/"

// Validate checks doc, a value decoded from YAML or JSON (maps with string
// keys, slices, strings, numbers, booleans, nil), and returns one
// error-severity diagnostic per problem, sorted by position. file names
// the source in the diagnostics; loc may be nil.
func (s *Schema) Validate(file string, doc any, loc Locator) diag.Diagnostics {
	ds, values := s.Check(file, doc, loc)
	ds = append(ds, values...)
	ds.Sort()
	return ds
}

// Check is Validate with the problems found by value rules (ValueRules)
// returned apart, in values; both lists are sorted.
func (s *Schema) Check(file string, doc any, loc Locator) (ds, values diag.Diagnostics) {
	err := s.compiled.Validate(doc)
	if err == nil {
		return nil, nil
	}
	ve, ok := err.(*jsonschema.ValidationError)
	if !ok {
		return diag.Diagnostics{diag.Errorf("%v", err).At(file, 0, 0)}, nil
	}
	var leaves []*jsonschema.ValidationError
	s.leaves(ve, &leaves)
	r := reporter{s: s, file: file, doc: doc, loc: loc}
	for _, l := range leaves {
		r.add(l)
	}
	ds, values = r.result()
	ds.Sort()
	values.Sort()
	return ds, values
}

// leaves collects the causes to report: the leaves of the tree, except
// that a oneOf/anyOf whose schema carries an "errorMessage" is reported as
// one problem instead of one per failed branch.
func (s *Schema) leaves(e *jsonschema.ValidationError, out *[]*jsonschema.ValidationError) {
	if kw := lastToken(e.KeywordLocation); (kw == "oneOf" || kw == "anyOf") && s.owner(e)["errorMessage"] != nil {
		*out = append(*out, e)
		return
	}
	if len(e.Causes) == 0 {
		*out = append(*out, e)
		return
	}
	for _, c := range e.Causes {
		s.leaves(c, out)
	}
}

// fragment returns the schema pointer of an error's keyword.
func fragment(e *jsonschema.ValidationError) string {
	_, frag, _ := strings.Cut(e.AbsoluteKeywordLocation, "#")
	return frag
}

// node returns the schema value at a pointer into the schema document.
func (s *Schema) node(pointer string) any {
	cur := s.doc
	if pointer == "" {
		return cur
	}
	for _, tok := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		tok = unescapeToken(tok)
		switch v := cur.(type) {
		case map[string]any:
			cur = v[tok]
		case []any:
			i := 0
			if _, err := fmt.Sscan(tok, &i); err != nil || i < 0 || i >= len(v) {
				return nil
			}
			cur = v[i]
		default:
			return nil
		}
	}
	return cur
}

// owner returns the schema object holding the error's keyword.
func (s *Schema) owner(e *jsonschema.ValidationError) map[string]any {
	frag := fragment(e)
	if i := strings.LastIndexByte(frag, '/'); i >= 0 {
		m, _ := s.node(frag[:i]).(map[string]any)
		return m
	}
	return nil
}

// allowedKeys lists the property names a schema object accepts, following
// local $refs (the image keys are shared through one): the keys whose
// schema is not false.
func (s *Schema) allowedKeys(m map[string]any, depth int) []string {
	if m == nil || depth > 8 {
		return nil
	}
	var keys []string
	if props, ok := m["properties"].(map[string]any); ok {
		for k, v := range props {
			if b, isBool := v.(bool); isBool && !b {
				continue
			}
			keys = append(keys, k)
		}
	}
	if ref, ok := m["$ref"].(string); ok && strings.HasPrefix(ref, "#") {
		sub, _ := s.node(strings.TrimPrefix(ref, "#")).(map[string]any)
		keys = append(keys, s.allowedKeys(sub, depth+1)...)
	}
	return keys
}

// instancePointer turns the library's instance location (tokens escaped
// with url.PathEscape on top of RFC 6901) into a plain JSON pointer.
func instancePointer(loc string) string {
	if loc == "" {
		return ""
	}
	toks := strings.Split(loc, "/")
	for i, t := range toks {
		if u, err := url.PathUnescape(t); err == nil {
			toks[i] = u
		}
	}
	return strings.Join(toks, "/")
}

func unescapeToken(t string) string {
	if u, err := url.PathUnescape(t); err == nil {
		t = u
	}
	return strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
}

func lastToken(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// value returns the instance value at a JSON pointer.
func value(doc any, pointer string) (any, bool) {
	cur := doc
	if pointer == "" {
		return cur, true
	}
	for _, tok := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch v := cur.(type) {
		case map[string]any:
			var ok bool
			if cur, ok = v[tok]; !ok {
				return nil, false
			}
		case []any:
			i := 0
			if _, err := fmt.Sscan(tok, &i); err != nil || i < 0 || i >= len(v) {
				return nil, false
			}
			cur = v[i]
		default:
			return nil, false
		}
	}
	return cur, true
}
