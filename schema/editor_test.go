package schema

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// editorClients returns the directory of the npm packages the editor tests
// run (schema/testdata/editor, installed by .ci/run with npm ci), or skips;
// with DIB_REQUIRE_INTEGRATION=1 a missing client is a failure.
func editorClients(t *testing.T) string {
	t.Helper()
	dir, _ := filepath.Abs("testdata/editor")
	node, err := exec.LookPath("node")
	if _, serr := os.Stat(filepath.Join(dir, "node_modules", "ajv")); err != nil || serr != nil {
		if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("node and the editor clients are required (npm ci --prefix %s)", dir)
		}
		t.Skipf("node or the editor clients are not installed (npm ci --prefix %s)", dir)
	}
	_ = node
	return dir
}

// TestSchemaStrictAjv: ajv 8 compiles the schema in strict mode (no
// custom keywords; dib's messages live in Go, dibfileMessages).
func TestSchemaStrictAjv(t *testing.T) {
	dir := editorClients(t)
	out, err := exec.Command("node", filepath.Join(dir, "ajv-strict.js"), "dibfile.schema.json").CombinedOutput()
	if err != nil {
		t.Fatalf("ajv strict mode refuses the schema: %v\n%s", err, out)
	}
}

// TestSchemaForEditors: every property is described, in plain text and in
// markdown, and every message of dibfileMessages names a schema object.
func TestSchemaForEditors(t *testing.T) {
	var doc any
	if err := json.Unmarshal(dibfileJSON, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch x := v.(type) {
		case map[string]any:
			if props, ok := x["properties"].(map[string]any); ok {
				for k, p := range props {
					ps, ok := p.(map[string]any)
					if !ok {
						continue // true/false schemas
					}
					if _, isRef := ps["$ref"]; isRef && len(ps) == 1 {
						continue // described where it points
					}
					if _, ok := ps["description"].(string); !ok {
						t.Errorf("%s/properties/%s has no description", path, k)
					}
					if _, ok := ps["markdownDescription"].(string); !ok {
						t.Errorf("%s/properties/%s has no markdownDescription", path, k)
					}
				}
			}
			for k, c := range x {
				if k != "examples" && k != "default" && k != "enum" {
					walk(c, path+"/"+k)
				}
			}
		case []any:
			for _, c := range x {
				walk(c, path)
			}
		}
	}
	walk(doc, "")
	s, err := Dibfile()
	if err != nil {
		t.Fatal(err)
	}
	// The image keys are listed where an image is written (top level,
	// images, defaults), each a $ref to its one definition: editors need
	// the names there (yaml-language-server applies neither a $ref with
	// siblings nor unevaluatedProperties), and the lists must not drift.
	defs, _ := s.node("/$defs/image-keys/properties").(map[string]any)
	for _, at := range []string{"/properties", "/properties/images/items/properties", "/properties/defaults/properties"} {
		props, _ := s.node(at).(map[string]any)
		for k := range defs {
			ref, _ := props[k].(map[string]any)
			if props[k] == false && at == "/properties/defaults/properties" && k == "name" {
				continue
			}
			if ref["$ref"] != "#/$defs/image-keys/properties/"+k {
				t.Errorf("%s lacks the image key %q as a $ref to its definition", at, k)
			}
		}
		for k := range props {
			if _, ok := defs[k]; !ok && k != "images" && k != "defaults" {
				t.Errorf("%s has %q, which is not an image key", at, k)
			}
		}
	}
	for _, m := range dibfileMessages {
		if _, ok := s.node(m.pointer).(map[string]any); !ok {
			t.Errorf("message for %s: no schema object there", m.pointer)
		}
	}
}

// TestEditorCompletesEnums: yaml-language-server offers the block-device
// presets and the output formats where they are written.
func TestEditorCompletesEnums(t *testing.T) {
	dir := editorClients(t)
	out, err := exec.Command("node", filepath.Join(dir, "complete.js"), "dibfile.schema.json").Output()
	if err != nil {
		t.Fatalf("yaml-language-server: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("output %q", out)
	}
	for i, want := range [][]string{{"efi", "gpt", "mbr", "efi-4k", "efi-lvm"}, {"qcow2", "raw", "tar", "docker", "format", "compress"}} {
		for _, w := range want {
			if !strings.Contains(lines[i], `"`+w+`"`) {
				t.Errorf("completion %d lacks %q: %s", i, w, lines[i])
			}
		}
	}
}
