package element

import (
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/dibuild/dib/spec/diag"
)

func exe(s string) *fstest.MapFile  { return &fstest.MapFile{Data: []byte(s), Mode: 0o755} }
func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s), Mode: 0o644} }
func link(t string) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte(t), Mode: fs.ModeSymlink | 0o777}
}

// osFS is a minimal element tree with an operating-system element "os".
func osFS() fstest.MapFS {
	return fstest.MapFS{
		"os/element-provides":   file("operating-system\n"),
		"os/root.d/10-os":       exe(""),
		"os/environment.d/10-a": file(""),
	}
}

func with(m fstest.MapFS, more fstest.MapFS) fstest.MapFS {
	out := fstest.MapFS{}
	for k, v := range m {
		out[k] = v
	}
	for k, v := range more {
		out[k] = v
	}
	return out
}

func resolveMap(t *testing.T, m fstest.MapFS, elements ...string) (*Result, diag.Diagnostics) {
	t.Helper()
	return Resolve(Options{Path: []Source{{Name: "test", FS: m}}, Elements: elements, SkipBase: true})
}

func phase(t *testing.T, r *Result, name string) Phase {
	t.Helper()
	for _, p := range r.Phases {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no phase %s", name)
	return Phase{}
}

func names(list []Script) string {
	var s []string
	for _, x := range list {
		s = append(s, x.Name)
	}
	return strings.Join(s, " ")
}

func messages(ds diag.Diagnostics, sev diag.Severity) []string {
	var out []string
	for _, d := range ds {
		if d.Severity == sev {
			out = append(out, d.Message)
		}
	}
	return out
}
