package plan

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"path"
	"reflect"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

// SchemaID names the plan file's JSON Schema.
const SchemaID = "https://dib.dev/schema/plan/v1.json"

// Schema returns the JSON Schema of a plan file of this FormatVersion. It
// is derived from the Go types (field names from their json tags, a field
// without omitempty required, no unknown keys), plus the constraints the
// types cannot say (hex digests, step kinds), so it can never drift from
// what dib writes.
func Schema() []byte {
	b, _ := json.MarshalIndent(schemaDoc(), "", "  ")
	return append(b, '\n')
}

// digest is a sha256 in hex, as every ID and content digest of a plan.
const digest = "^[0-9a-f]{64}$"

// constraints returns what is added to the generated schema of some
// fields, keyed by package.Type.jsonName.
func constraints() map[string]map[string]any {
	optDigest := map[string]any{"pattern": "^([0-9a-f]{64})?$"}
	where := map[string]any{"enum": []any{"", Host, Chroot}}
	return map[string]map[string]any{
		"plan.Plan.format_version": {"const": FormatVersion},
		"plan.Plan.id":             {"pattern": digest},
		"plan.Plan.blobs":          {"propertyNames": map[string]any{"pattern": digest}},
		"plan.Step.id":             {"pattern": digest},
		"plan.Step.deps":           {"items": map[string]any{"type": "string", "pattern": digest}},
		"plan.Step.kind": {"enum": []any{KindBootstrap, KindHooks, KindPhase, KindPackages, KindImageSize, KindPartition,
			KindBootloader, KindOutput, KindChecksum, KindManifest}},
		"plan.Step.where":     where,
		"plan.Phase.where":    where,
		"plan.File.sha256":    optDigest,
		"plan.Script.sha256":  optDigest,
		"plan.EnvFile.sha256": optDigest,
	}
}

func schemaDoc() map[string]any {
	defs := map[string]any{}
	g := gen{defs: defs, extra: constraints()}
	root := g.typeSchema(reflect.TypeOf(Plan{}))
	return map[string]any{
		"$schema": "https://json-schema.org/draft/2020-12/schema",
		"$id":     SchemaID,
		"title":   "dib plan file",
		"$defs":   defs,
		"$ref":    root.(map[string]any)["$ref"],
	}
}

// gen derives schemas from Go types.
type gen struct {
	defs  map[string]any
	extra map[string]map[string]any
}

// defName names a struct type by its package's last element: plan.Image
// and layout.Image stay apart.
func defName(t reflect.Type) string { return path.Base(t.PkgPath()) + "." + t.Name() }

var textMarshaler = reflect.TypeOf((*encoding.TextMarshaler)(nil)).Elem()

// typeSchema returns the schema of values of t as encoding/json writes them.
func (g gen) typeSchema(t reflect.Type) any {
	if t.Implements(textMarshaler) {
		return map[string]any{"type": "string"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return nullable(g.typeSchema(t.Elem()))
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer", "minimum": 0}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		return nullable(map[string]any{"type": "array", "items": g.typeSchema(t.Elem())})
	case reflect.Array:
		return map[string]any{"type": "array", "items": g.typeSchema(t.Elem())}
	case reflect.Map:
		return nullable(map[string]any{"type": "object", "additionalProperties": g.typeSchema(t.Elem())})
	case reflect.Struct:
		name := defName(t)
		if _, done := g.defs[name]; !done {
			g.defs[name] = true // placeholder against recursion
			g.defs[name] = g.structSchema(t)
		}
		return map[string]any{"$ref": "#/$defs/" + name}
	}
	return map[string]any{}
}

func nullable(s any) any {
	return map[string]any{"anyOf": []any{map[string]any{"type": "null"}, s}}
}

func (g gen) structSchema(t reflect.Type) map[string]any {
	props := map[string]any{}
	required := []any{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(f.Type)
				continue
			}
			if !f.IsExported() {
				continue
			}
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if name == "" {
				name = f.Name
			}
			s := g.typeSchema(f.Type)
			if c, ok := g.extra[defName(t)+"."+name]; ok {
				m := map[string]any{}
				for k, v := range c {
					m[k] = v
				}
				s = map[string]any{"allOf": []any{s, m}}
			}
			props[name] = s
			if !strings.Contains(","+opts+",", ",omitempty,") {
				required = append(required, name)
			}
		}
	}
	walk(t)
	return map[string]any{"type": "object", "properties": props, "required": required, "additionalProperties": false}
}

// compiledSchema is compiled once per process; it is immutable.
var compiledSchema = sync.OnceValues(func() (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.Draft = jsonschema.Draft2020
	if err := c.AddResource(SchemaID, bytes.NewReader(Schema())); err != nil {
		return nil, err
	}
	return c.Compile(SchemaID)
})

// validateSchema checks a decoded plan file against Schema and returns its
// first problems, each with its JSON pointer.
func validateSchema(doc any) error {
	sch, err := compiledSchema()
	if err != nil {
		return fmt.Errorf("plan schema: %w", err)
	}
	err = sch.Validate(doc)
	if err == nil {
		return nil
	}
	ve, ok := err.(*jsonschema.ValidationError)
	if !ok {
		return err
	}
	var msgs []string
	var leaves func(e *jsonschema.ValidationError)
	leaves = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			if strings.HasPrefix(e.Message, "expected null,") {
				return // the other branch of a nullable value says more
			}
			loc := e.InstanceLocation
			if loc == "" {
				loc = "/"
			}
			msgs = append(msgs, loc+": "+e.Message)
			return
		}
		for _, c := range e.Causes {
			leaves(c)
		}
	}
	leaves(ve)
	if len(msgs) > 5 {
		msgs = append(msgs[:5], fmt.Sprintf("and %d more", len(msgs)-5))
	}
	return fmt.Errorf("does not match the plan file schema: %s", strings.Join(msgs, "; "))
}
