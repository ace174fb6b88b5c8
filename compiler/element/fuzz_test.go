package element

import (
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

// FuzzResolve feeds arbitrary element-deps, element-provides and hook
// names to Resolve: it must never panic, and must give the same result twice.
func FuzzResolve(f *testing.F) {
	f.Add("os\n# c\n", "operating-system\n", "install.d/10-x", "b")
	f.Add("b\r\nos", "", "static/etc/a", "a b os")
	f.Add("a\n\n  \n", "a\nb\n", "install.d/../x", "")
	f.Fuzz(func(t *testing.T, deps, provides, hook, request string) {
		m := fstest.MapFS{
			"os/element-provides": file("operating-system\n"),
			"a/element-deps":      file(deps),
			"a/element-provides":  file(provides),
			"b/element-deps":      file("a\n"),
		}
		if fsValid(hook) {
			m["a/"+hook] = exe("")
			m["b/"+hook] = exe("b")
		}
		opts := Options{Path: []Source{{"f", m}}, Elements: strings.Fields(request)}
		r1, d1 := Resolve(opts)
		r2, d2 := Resolve(opts)
		if r1 == nil || !reflect.DeepEqual(r1.Files, r2.Files) || !reflect.DeepEqual(r1.Phases, r2.Phases) || !reflect.DeepEqual(d1, d2) {
			t.Fatalf("not deterministic")
		}
	})
}

func fsValid(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
		return false
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." {
			return false
		}
	}
	return true
}
