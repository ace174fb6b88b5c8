package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestManPages: one page per command, from the same model as --help, and
// groff reads them without a warning.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	if code, _, errs := runDib(t, "man", "--dir", dir); code != 0 {
		t.Fatalf("%d %s", code, errs)
	}
	for _, cmd := range []string{"", "-plan", "-apply", "-validate", "-init", "-disk-image-create", "-help"} {
		src, err := os.ReadFile(filepath.Join(dir, "dib"+cmd+".1"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{".TH DIB" + strings.ToUpper(cmd) + " 1", ".SH NAME\n", ".SH SYNOPSIS\n", ".SH OPTIONS\n"} {
			if !strings.Contains(string(src), want) {
				t.Errorf("dib%s.1 lacks %q", cmd, want)
			}
		}
	}
	plan, _ := os.ReadFile(filepath.Join(dir, "dib-plan.1"))
	if !strings.Contains(string(plan), `\-\-no\-host\-check`) || !strings.Contains(string(plan), "dib plan examples/debian\\-vm.yaml") {
		t.Errorf("dib-plan.1 lacks its flags or examples:\n%s", plan)
	}
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("groff not installed")
	}
	pages, _ := filepath.Glob(filepath.Join(dir, "*.1"))
	for _, p := range pages {
		out, err := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z", p).CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("groff %s: %v\n%s", filepath.Base(p), err, out)
		}
	}
}
