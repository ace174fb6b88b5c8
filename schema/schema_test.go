package schema

import (
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/dibuild/dib/spec/diag"
)

func TestDibfileSchema(t *testing.T) {
	s, err := Dibfile()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(DibfileJSON(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["$id"] != DibfileID {
		t.Errorf("$id = %v, want %s", doc["$id"], DibfileID)
	}
	if doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %v", doc["$schema"])
	}
	if ds := s.Validate("f", map[string]any{"distro": "debian-minimal"}, nil); len(ds) != 0 {
		t.Errorf("valid document rejected: %v", ds)
	}
	// Without a locator, problems are still reported, at no position.
	ds := s.Validate("f", map[string]any{"arch": "vax", "elemnts": []any{}}, nil)
	if len(ds) != 2 || ds[0].Line != 0 {
		t.Errorf("got %v", ds)
	}
}

// TestKeysDocumented checks that docs/dibfile.md has a section for every
// key the schema accepts, so the reference cannot fall behind.
func TestKeysDocumented(t *testing.T) {
	s, err := Dibfile()
	if err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile("../docs/dibfile.md")
	if err != nil {
		t.Fatal(err)
	}
	keys := s.allowedKeys(s.doc.(map[string]any), 0)
	sort.Strings(keys)
	if len(keys) < 29 {
		t.Fatalf("only %d keys found", len(keys))
	}
	for _, k := range keys {
		if !strings.Contains(string(md), "### `"+k+"`") {
			t.Errorf("docs/dibfile.md has no section \"### `%s`\"", k)
		}
	}
}

func TestLabel(t *testing.T) {
	for in, want := range map[string]string{
		"":                           "the top level",
		"/arch":                      "arch",
		"/images/1/outputs/0":        "images[1].outputs[0]",
		"/0/types":                   "[0].types",
		"/env/A~1B":                  "env.A/B",
		"/install-types/overrides/x": "install-types.overrides.x",
	} {
		if got := Label(in); got != want {
			t.Errorf("Label(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestClosest(t *testing.T) {
	keys := []string{"elements", "elements-path", "env", "outputs", "arch"}
	for in, want := range map[string]string{
		"elemnts":  "elements",
		"elmeents": "elements",
		"output":   "outputs",
		"ARCH":     "arch",
		"colour":   "",
		"e":        "",
	} {
		if got := diag.Closest(in, keys); got != want {
			t.Errorf("closest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestInstancePointer(t *testing.T) {
	if got := instancePointer("/env/A%20B/x~1y"); got != "/env/A B/x~1y" {
		t.Errorf("got %q", got)
	}
}

func BenchmarkValidate(b *testing.B) {
	s, err := Dibfile()
	if err != nil {
		b.Fatal(err)
	}
	doc := map[string]any{"distro": "debian-minimal", "elements": []any{"vm"}, "outputs": []any{"qcow3"}}
	for b.Loop() {
		s.Validate("f", doc, nil)
	}
}
