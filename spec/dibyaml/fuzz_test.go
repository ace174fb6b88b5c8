package dibyaml

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/dibuild/dib/spec"
)

// FuzzConvert: Convert never panics, and whatever it returns loads as a
// valid Dibfile.
func FuzzConvert(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range files {
		if src, err := os.ReadFile(p); err == nil {
			f.Add(src)
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		out, ds := Convert("in.yaml", src)
		if ds.HasErrors() != (out == nil) {
			t.Fatalf("errors %v, output %v", ds.HasErrors(), out != nil)
		}
		if out != nil {
			if _, lds := spec.Load("Dibfile", out, nil); lds.HasErrors() {
				t.Fatalf("converted output does not load: %v\n%s", lds, out)
			}
		}
	})
}
