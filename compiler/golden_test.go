package compiler

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/plan/render"
	"github.com/dibuild/dib/elements"
	"github.com/dibuild/dib/internal/golden"
	"github.com/dibuild/dib/spec"
)

// TestGoldenPlans compiles every example with dib's built-in elements and
// compares the text rendering and the plan JSON (the contract with the
// runtime: NAME.json, or NAME.IMAGE.json for each image of a multi-image
// file) byte for byte.
func TestGoldenPlans(t *testing.T) {
	paths, _ := filepath.Glob("../examples/*.yaml")
	if len(paths) == 0 {
		t.Fatal("no examples")
	}
	env := map[string]string{} // no secret in the environment: shown as missing
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			f, ds := spec.Load("examples/"+name+".yaml", src, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
			if ds.HasErrors() {
				t.Fatal(ds)
			}
			f.Path = path // elements-path entries are relative to the real file
			plans, ds := Compile(f, Options{Builtin: elements.FS(), DibVersion: "golden"})
			var text bytes.Buffer
			if ds.HasErrors() {
				_ = ds.WriteText(&text)
			}
			for _, p := range plans {
				p.Image.Source = "examples/" + name + ".yaml"
				if err := render.Text(&text, p, render.Options{}); err != nil {
					t.Fatal(err)
				}
				text.WriteString("\n")
			}
			golden.Compare(t, filepath.Join("testdata", "plans", name+".txt"), text.Bytes())
			for _, p := range plans {
				file := name + ".json"
				if len(plans) > 1 {
					file = name + "." + p.Image.Name + ".json"
				}
				golden.Compare(t, filepath.Join("testdata", "plans", file), planJSON(t, p))
			}
		})
	}
}
