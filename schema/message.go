package schema

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v5"

	"github.com/dibuild/dib/spec/diag"
)

// problem is one diagnostic before positions are attached.
type problem struct {
	kind    string // "type", "unknown", or the keyword
	pointer string
	key     bool // locate the key of pointer, not its value
	message string
	hint    string
	value   bool // from a rule under #/$defs/value-rules (ValueRules)
}

// reporter turns validation leaves into problems, then diagnostics.
type reporter struct {
	s        *Schema
	file     string
	doc      any
	loc      Locator
	problems []problem
}

func (r *reporter) add(e *jsonschema.ValidationError) {
	frag := fragment(e)
	if strings.HasPrefix(frag, ValueRules) {
		n := len(r.problems)
		defer func() {
			for i := n; i < len(r.problems); i++ {
				r.problems[i].value = true
			}
		}()
	}
	ptr := instancePointer(e.InstanceLocation)
	kw := lastToken(e.KeywordLocation)
	owner := r.s.owner(e)
	val, _ := value(r.doc, ptr)
	label := Label(ptr)
	custom, _ := owner["errorMessage"].(string)

	// A subschema of propertyNames validates a key, not a value.
	if strings.Contains(e.KeywordLocation, "/propertyNames") {
		r.keyProblem(e, ptr, owner)
		return
	}
	switch {
	case kw == "oneOf" || kw == "anyOf":
		msg := custom
		if msg == "" {
			msg = "does not match any allowed form"
		}
		r.push(problem{kind: kw, pointer: ptr, message: label + ": " + msg})
	case kw == "type":
		r.push(problem{kind: "type", pointer: ptr,
			message: fmt.Sprintf("%s must be %s, not %s", label, expected(owner["type"]), kindOf(val)),
			hint:    typeHint(owner["type"], val)})
	case kw == "enum":
		allowed, _ := owner["enum"].([]any)
		words := make([]string, len(allowed))
		for i, a := range allowed {
			words[i] = fmt.Sprint(a)
		}
		msg := fmt.Sprintf("invalid %s %s: must be one of %s", label, render(val), strings.Join(words, ", "))
		hint := ""
		if sv, ok := val.(string); ok {
			if m := diag.Closest(sv, words); m != "" {
				hint = fmt.Sprintf("did you mean %q?", m)
			}
		}
		r.push(problem{kind: kw, pointer: ptr, message: msg, hint: hint})
	case kw == "required":
		obj, _ := val.(map[string]any)
		req, _ := owner["required"].([]any)
		for _, k := range req {
			ks := fmt.Sprint(k)
			if _, ok := obj[ks]; !ok {
				where := ""
				if ptr != "" {
					where = label + ": "
				}
				r.push(problem{kind: kw, pointer: ptr, message: fmt.Sprintf("%smissing required key %q", where, ks)})
			}
		}
	case kw == "additionalProperties" && len(e.Causes) == 0 && owner["additionalProperties"] == false:
		obj, _ := val.(map[string]any)
		allowed := r.s.allowedKeys(owner, 0)
		set := map[string]bool{}
		for _, a := range allowed {
			set[a] = true
		}
		for k := range obj {
			if !set[k] {
				r.unknown(ptr+"/"+escapeToken(k), k, allowed)
			}
		}
	case kw == "unevaluatedProperties":
		// A known key is "unevaluated" too when its own value failed
		// (annotations of failed subschemas are dropped); that failure is
		// reported by itself.
		k := unescapeToken(lastToken(ptr))
		allowed := r.s.allowedKeys(owner, 0)
		for _, a := range allowed {
			if a == k {
				return
			}
		}
		r.unknown(ptr, k, allowed)
	case r.s.node(frag) == false:
		// A false schema: the key is known but not allowed where it is.
		k := unescapeToken(lastToken(ptr))
		msg := fmt.Sprintf("key %q is not allowed here", k)
		hint := ""
		switch {
		case ptr == "/defaults":
			msg, hint = `key "defaults" is only allowed together with "images"`, `"defaults" holds the keys shared by the images listed under "images"`
		case k == "name" && strings.HasPrefix(ptr, "/defaults/"):
			msg, hint = `key "name" is not allowed in "defaults"`, "each image under \"images\" sets its own name"
		case (k == "release" || k == "mirror") && lastToken(parentOf(ptr)) == "distro":
			// The image sets the key beside distro too (the schema's
			// allOf: if release then distro.release false).
			// Reported at the image's key, as spec's decoder does.
			l, c := r.loc.LocateKey(ptr)
			ptr = parentOf(parentOf(ptr)) + "/" + k
			msg, hint = fmt.Sprintf("%s is set twice: here and in distro", k),
				fmt.Sprintf("keep one: %q here or distro.%s at line %d, column %d", k, k, l, c)
		case outputFormat(r.doc, parentOf(ptr)) != "":
			// The output's format does not take the option (the schema's
			// per-format if/then, from the format table).
			msg = fmt.Sprintf("%q does not apply to %s outputs", k, outputFormat(r.doc, parentOf(ptr)))
		}
		r.push(problem{kind: "false", pointer: ptr, key: true, message: msg, hint: hint})
	case kw == "pattern":
		msg, _ := owner["patternErrorMessage"].(string)
		if msg == "" {
			msg = fmt.Sprintf("must match %v", owner["pattern"])
		}
		r.push(problem{kind: kw, pointer: ptr, message: fmt.Sprintf("invalid %s %s: %s", label, render(val), msg)})
	case kw == "minItems" || kw == "minLength":
		r.push(problem{kind: kw, pointer: ptr, message: label + " must not be empty"})
	case kw == "minimum":
		r.push(problem{kind: kw, pointer: ptr, message: fmt.Sprintf("%s must be at least %v, not %s", label, owner["minimum"], render(val))})
	case kw == "exclusiveMinimum":
		r.push(problem{kind: kw, pointer: ptr, message: fmt.Sprintf("%s must be greater than %v, not %s", label, owner["exclusiveMinimum"], render(val))})
	case kw == "maximum":
		r.push(problem{kind: kw, pointer: ptr, message: fmt.Sprintf("%s must be at most %v, not %s", label, owner["maximum"], render(val))})
	case kw == "uniqueItems":
		var i, j int
		if m := uniqueRE.FindStringSubmatch(e.Message); m != nil {
			i, _ = strconv.Atoi(m[1])
			j, _ = strconv.Atoi(m[2])
		}
		list, _ := val.([]any)
		item := ""
		if j < len(list) {
			item = render(list[j]) + " "
		}
		r.push(problem{kind: kw, pointer: ptr + "/" + strconv.Itoa(j),
			message: fmt.Sprintf("%s lists %stwice", label, item),
			hint:    fmt.Sprintf("it is already item %d of %s", i, label)})
	case custom != "":
		r.push(problem{kind: kw, pointer: ptr, message: label + ": " + custom})
	default:
		r.push(problem{kind: kw, pointer: ptr, message: label + ": " + e.Message})
	}
}

var uniqueRE = regexp.MustCompile(`index (\d+) and (\d+)`)

// keyProblem reports a key rejected by propertyNames.
func (r *reporter) keyProblem(e *jsonschema.ValidationError, ptr string, owner map[string]any) {
	k := unescapeToken(lastToken(ptr))
	parent := parentOf(ptr)
	if msg, ok := owner["errorMessage"].(string); ok {
		r.push(problem{kind: "key", pointer: ptr, key: true, message: fmt.Sprintf("key %q is not allowed: %s", k, msg),
			hint: `move it into "defaults", or into each image`})
		return
	}
	switch lastToken(e.KeywordLocation) {
	case "enum":
		var words []string
		enum, _ := owner["enum"].([]any)
		for _, a := range enum {
			words = append(words, fmt.Sprint(a))
		}
		r.unknown(ptr, k, words)
	case "pattern":
		msg, _ := owner["patternErrorMessage"].(string)
		r.push(problem{kind: "key", pointer: ptr, key: true, message: fmt.Sprintf("invalid key %q in %s: %s", k, Label(parent), msg)})
	default:
		r.push(problem{kind: "key", pointer: ptr, key: true, message: fmt.Sprintf("invalid key %q in %s: %s", k, Label(parent), e.Message)})
	}
}

// unknown reports a key that is not allowed, suggesting the closest
// allowed one.
func (r *reporter) unknown(ptr, key string, allowed []string) {
	allowed = append([]string(nil), allowed...)
	sort.Strings(allowed)
	p := problem{kind: "unknown", pointer: ptr, key: true, message: fmt.Sprintf("unknown key %q", key)}
	if parent := parentOf(ptr); parent != "" {
		p.message += " in " + Label(parent)
	}
	if m := diag.Closest(key, allowed); m != "" {
		p.hint = fmt.Sprintf("did you mean %q?", m)
	} else if len(allowed) > 0 && len(allowed) <= 10 {
		p.hint = "allowed keys: " + strings.Join(allowed, ", ")
	} else if len(allowed) > 10 {
		p.hint = "`dib schema` and docs/dibfile.md list every key"
	}
	r.push(p)
}

// parentOf returns the pointer of the value holding pointer's value.
func parentOf(pointer string) string {
	if i := strings.LastIndexByte(pointer, '/'); i >= 0 {
		return pointer[:i]
	}
	return ""
}

func (r *reporter) push(p problem) { r.problems = append(r.problems, p) }

// result drops the problems that repeat a more precise one at the same
// pointer (a wrong type makes every other check of that value noise; an
// unknown key needs no second message) and attaches positions. The
// problems found by value rules come back apart, in values.
func (r *reporter) result() (ds, values diag.Diagnostics) {
	byPtr := map[string]map[string]bool{}
	for _, p := range r.problems {
		if byPtr[p.pointer] == nil {
			byPtr[p.pointer] = map[string]bool{}
		}
		byPtr[p.pointer][p.kind] = true
	}
	seen := map[string]bool{}
	for _, p := range r.problems {
		kinds := byPtr[p.pointer]
		if kinds["type"] && p.kind != "type" {
			continue
		}
		if kinds["unknown"] && p.kind != "unknown" {
			continue
		}
		if seen[p.pointer+"\x00"+p.message] {
			continue
		}
		seen[p.pointer+"\x00"+p.message] = true
		line, col := 0, 0
		if r.loc != nil {
			if p.key {
				line, col = r.loc.LocateKey(p.pointer)
			} else {
				line, col = r.loc.Locate(p.pointer)
			}
		}
		d := diag.Diagnostic{Severity: diag.Error, Message: p.message, Hint: p.hint}.At(r.file, line, col).WithPath(p.pointer)
		if p.value {
			values = append(values, d)
		} else {
			ds = append(ds, d)
		}
	}
	return ds, values
}

func escapeToken(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// Label renders a JSON pointer the way a user reads a Dibfile path:
// "/images/1/outputs/0" is "images[1].outputs[0]", "/0/types" (in a
// top-level list) is "[0].types"; "" is "the top level".
func Label(pointer string) string {
	if pointer == "" {
		return "the top level"
	}
	var b strings.Builder
	for _, tok := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		tok = unescapeToken(tok)
		if _, err := strconv.Atoi(tok); err == nil {
			fmt.Fprintf(&b, "[%s]", tok)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}

// kindOf names a decoded YAML value's kind in YAML words.
func kindOf(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	case float32, float64:
		_ = x
		return "a number"
	default:
		return "an integer"
	}
}

// expected renders a schema "type" keyword in YAML words.
func expected(t any) string {
	var names []string
	switch x := t.(type) {
	case string:
		names = []string{x}
	case []any:
		for _, n := range x {
			names = append(names, fmt.Sprint(n))
		}
	}
	words := make([]string, len(names))
	for i, n := range names {
		switch n {
		case "object":
			words[i] = "a mapping"
		case "array":
			words[i] = "a list"
		case "integer":
			words[i] = "an integer"
		default:
			words[i] = "a " + n
		}
	}
	switch len(words) {
	case 0:
		return "something else"
	case 1:
		return words[0]
	default:
		return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
	}
}

// typeHint helps with YAML's usual type surprises.
func typeHint(t any, v any) string {
	want := fmt.Sprint(t)
	switch x := v.(type) {
	case string:
		if strings.Contains(want, "boolean") {
			switch strings.ToLower(x) {
			case "yes", "no", "on", "off", "y", "n", "true", "false":
				return "write true or false, without quotes"
			}
		}
		if strings.Contains(want, "integer") || strings.Contains(want, "number") {
			if _, err := strconv.ParseFloat(x, 64); err == nil {
				return "write the number without quotes"
			}
		}
	case bool, float64, float32, int64, uint64, int:
		if strings.Contains(want, "string") {
			return fmt.Sprintf("quote the value to make it a string: \"%v\"", x)
		}
	case nil:
		return "the value is empty; remove the key or give it a value"
	}
	return ""
}

// render shows a value in a message.
func render(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case nil:
		return "null"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	default:
		return fmt.Sprint(x)
	}
}

// outputFormat returns the format of the output at pointer (an item of an
// "outputs" list written as a mapping), or "".
func outputFormat(doc any, pointer string) string {
	if lastToken(parentOf(pointer)) != "outputs" {
		return ""
	}
	v, _ := value(doc, pointer)
	m, _ := v.(map[string]any)
	f, _ := m["format"].(string)
	return f
}
