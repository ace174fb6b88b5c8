package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportRules checks the package layering of STYLE.md with go list:
// data flows spec -> schema -> compiler -> plan -> runtime, the plan model
// is a leaf both sides share, and the runtime never sees a Dibfile or the
// compiler. (Recorded exceptions: spec imports schema, because Load
// validates against the embedded schema, and the format table
// compiler/plan/format, a leaf importing nothing, because the Dibfile
// checks of each output's options come from it; and the DIB defaults
// table compiler/plan/dibenv, a leaf of constants, which spec applies.)
func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps=false", "-f", "{{.ImportPath}} {{join .Deps \" \"}}", "github.com/dibuild/dib/...").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	const mod = "github.com/dibuild/dib/"
	allowed := []struct {
		pkg   string // prefix of the importing package
		allow []string
	}{
		{"spec/diag", nil},
		{"schema", []string{"spec/diag"}},
		{"spec", []string{"spec/", "schema", "compiler/plan/format", "compiler/plan/dibenv"}},
		{"compiler/plan/layout", []string{"spec/diag"}},
		{"compiler/plan/format", nil},
		{"compiler/plan/dibenv", nil},
		{"compiler/plan", []string{"compiler/plan", "spec/diag"}},
		{"compiler", []string{"compiler", "spec", "schema", "elements"}},
		{"runtime", []string{"runtime", "compiler/plan", "spec/diag"}},
		{"elements", nil},
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 10 {
		t.Fatalf("go list found only %d packages", len(lines))
	}
	for _, line := range lines {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], mod)
		var rule []string
		found := false
		for _, r := range allowed {
			if pkg == r.pkg || strings.HasPrefix(pkg, r.pkg+"/") {
				rule, found = r.allow, true
				break
			}
		}
		if !found {
			continue // cmd/dib may import anything
		}
		for _, dep := range fields[1:] {
			if !strings.HasPrefix(dep, mod) {
				continue
			}
			d := strings.TrimPrefix(dep, mod)
			ok := false
			for _, a := range rule {
				if d == strings.TrimSuffix(a, "/") || strings.HasPrefix(d, strings.TrimSuffix(a, "/")+"/") {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s depends on %s, which the layering forbids", pkg, d)
			}
		}
	}
}
