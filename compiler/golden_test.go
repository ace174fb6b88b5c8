package compiler

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/plan/render"
	"github.com/dibuild/dib/elements"
	"github.com/dibuild/dib/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// goldenJSON are the examples whose whole plan JSON is kept as a golden
// file (the others keep their text rendering only: the JSON carries every
// hook file and would repeat the same content).
var goldenJSON = map[string]bool{"debian-vm": true, "debian-tarball": true}

// TestGoldenPlans compiles every example with dib's built-in elements and
// compares the text rendering (and for some the JSON) byte for byte.
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
			compareGolden(t, filepath.Join("testdata", "plans", name+".txt"), text.Bytes())
			if goldenJSON[name] && len(plans) == 1 {
				compareGolden(t, filepath.Join("testdata", "plans", name+".json"), planJSON(t, plans[0]))
			}
		})
	}
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./compiler -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run go test ./compiler -update and review the diff):\n%s", path,
			firstDiff(string(want), string(got)))
	}
}

func firstDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(la) && i < len(lb); i++ {
		if la[i] != lb[i] {
			return "line " + strconv.Itoa(i+1) + ":\n- " + la[i] + "\n+ " + lb[i]
		}
	}
	return "length differs"
}
