package dibyaml

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dibuild/dib/internal/golden"
	"github.com/dibuild/dib/spec"
)

// TestConvert converts every testdata file; the golden .out file holds the
// Dibfile followed by the diagnostics. A converted Dibfile must load.
func TestConvert(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			out, ds := Convert(name, src)
			invalid := strings.Contains(name, "-invalid-")
			if invalid != ds.HasErrors() {
				t.Fatalf("errors = %v, want %v:\n%v", ds.HasErrors(), invalid, ds)
			}
			if !invalid {
				if _, lds := spec.Load("Dibfile", out, nil); len(lds) != 0 {
					t.Fatalf("converted Dibfile does not load:\n%v\n%s", lds, out)
				}
				again, _ := Convert(name, src)
				if !bytes.Equal(out, again) {
					t.Fatalf("two conversions differ")
				}
			}
			var buf bytes.Buffer
			buf.Write(out)
			buf.WriteString("--- diagnostics\n")
			if err := ds.WriteText(&buf); err != nil {
				t.Fatal(err)
			}
			golden.Compare(t, strings.TrimSuffix(path, ".yaml")+".out", buf.Bytes())
		})
	}
}

// TestMergeRules checks DIB's build_commands rules on their own.
func TestMergeRules(t *testing.T) {
	list := []any{
		map[string]any{"elements": []any{"a"}, "environment": map[string]any{"X": "1", "Y": "1"}, "arch": "amd64"},
		map[string]any{"imagename": "two", "elements": []any{"z"}},
		map[string]any{"elements": []any{"y"}},
		map[string]any{"imagename": "image", "elements": []any{"b"}, "environment": map[string]any{"Y": "2"}, "arch": "arm64"},
	}
	got := merge(list)
	if len(got) != 2 || got[0].name != "image" || got[1].name != "two" {
		t.Fatalf("images: %+v", got)
	}
	img := got[0].values
	if e := img["elements"].([]any); len(e) != 2 || e[0] != "a" || e[1] != "b" {
		t.Errorf("lists are extended: %v", e)
	}
	if env := img["environment"].(map[string]any); env["X"] != "1" || env["Y"] != "2" {
		t.Errorf("dicts are updated: %v", env)
	}
	if img["arch"] != "arm64" {
		t.Errorf("scalars are replaced: %v", img["arch"])
	}
	if e := got[1].values["elements"].([]any); len(e) != 2 || e[1] != "y" {
		t.Errorf("an entry without imagename joins the previous one: %v", e)
	}
	// The input maps are not modified by merging.
	if e := list[0].(map[string]any)["elements"].([]any); len(e) != 1 {
		t.Errorf("input modified: %v", e)
	}
}
