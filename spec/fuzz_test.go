package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to Load: it must never panic, must return
// a File exactly when there is no error, and every error must carry a
// position.
//
//	go test -run '^$' -fuzz FuzzLoad -fuzztime 5m ./spec/
func FuzzLoad(f *testing.F) {
	for _, pattern := range []string{"testdata/*/*.yaml", "../examples/*.yaml"} {
		files, _ := filepath.Glob(pattern)
		for _, p := range files {
			// Large seeds (the limit cases) only slow the fuzzer down.
			if src, err := os.ReadFile(p); err == nil && len(src) < 16<<10 {
				f.Add(src)
			}
		}
	}
	f.Add([]byte("a: &x [*x]"))
	f.Add([]byte("<<: {distro: x}\n"))
	f.Add([]byte("? [a]\n: b\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		file, ds := Load("Dibfile", src, func(string) (string, bool) { return "v", true })
		if ds.HasErrors() != (file == nil) {
			t.Fatalf("errors %v but file %v", ds.HasErrors(), file != nil)
		}
		for _, d := range ds {
			if strings.Contains(d.Message, "internal error") {
				t.Fatalf("recovered panic: %s", d.Message)
			}
			if d.Line <= 0 || d.Col <= 0 {
				t.Fatalf("diagnostic without a position: %+v", d)
			}
		}
		if file != nil {
			for _, img := range file.Images {
				if img.Name == "" || len(img.Outputs) == 0 {
					t.Fatalf("defaults not applied: %+v", img)
				}
				file.Locate(img.Pointer + "/outputs/0")
			}
		}
	})
}
