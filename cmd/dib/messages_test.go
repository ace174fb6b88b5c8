package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dibuild/dib/internal/golden"
)

// TestMessages keeps the messages of common mistakes as golden files
// (testdata/messages/NAME.golden: the exit status, stdout and stderr).
// go test -run TestMessages -update rewrites them.
func TestMessages(t *testing.T) {
	const dir = "testdata/messages/"
	for _, tc := range []struct {
		name  string
		env   []string
		stdin string
		args  []string
	}{
		{"plan-o-multi-image", nil, "", []string{"plan", "-o", "plans.json", dir + "multi.yaml"}},
		{"plan-o-a-file", nil, "", []string{"plan", "-o", dir + "ok.yaml", dir + "multi.yaml"}},
		{"export-k8s-o-a-file", nil, "", []string{"export", "k8s", "-o", dir + "ok.yaml", "--registry", "r.example/c", "--builder-image", "r.example/dib", "--dest", "pvc:out", dir + "multi.yaml"}},
		{"export-k8s-incomplete", nil, "", []string{"export", "k8s", "-o", dir + "fleet", "--dest", "s3://bucket", "--cpu", "two", dir + "multi.yaml"}},
		{"image-unknown", nil, "", []string{"plan", "--image", "wbe", dir + "multi.yaml"}},
		{"blockdev-base-typo", nil, "", []string{"plan", dir + "base-typo.yaml"}},
		{"distro-typo", nil, "", []string{"plan", dir + "distro-typo.yaml"}},
		{"element-typo", nil, "", []string{"plan", dir + "element-typo.yaml"}},
		{"validate-stdin", nil, "name: x\ndistr: debian-minimal\n", []string{"validate", "-"}},
		{"no-color-empty", []string{"NO_COLOR="}, "", []string{"validate", dir + "ok.yaml"}},
		{"no-color-2", []string{"NO_COLOR=2"}, "", []string{"validate", dir + "ok.yaml"}},
		{"no-color-0", []string{"NO_COLOR=0"}, "", []string{"validate", dir + "ok.yaml"}},
		{"apply-n-is-not-dry-run", nil, "", []string{"apply", "-n", dir + "ok.yaml"}},
		{"missing-file", nil, "", []string{"plan", dir + "nosuch.yaml"}},
		{"os-element-in-elements", nil, "", []string{"plan", "--no-color", dir + "os-in-elements.yaml"}},
		{"two-os-elements", nil, "", []string{"validate", dir + "two-os-elements.yaml"}},
		{"validate-element-typo", nil, "", []string{"validate", dir + "element-typo.yaml"}},
		{"validate-release-typo", nil, "", []string{"validate", dir + "release-typo.yaml"}},
		{"validate-release-other-distro", nil, "", []string{"validate", dir + "release-other-distro.yaml"}},
		{"validate-allow-unknown-release", nil, "", []string{"validate", "--allow-unknown-release", dir + "release-typo.yaml"}},
		{"plan-unbuildable-here", nil, "", []string{"plan", "--no-color", "--elements-path", dir + "elements", dir + "gentoo.yaml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			cli := []string{}
			cli = append(cli, tc.args...)
			code := runWithInput(cli, strings.NewReader(tc.stdin), &out, &errb, append([]string{"HOME=/nonexistent"}, tc.env...))
			stdout := out.String()
			if strings.HasPrefix(stdout, "Plan for image ") { // the plan itself is tested elsewhere
				stdout = "(the plan)\n"
			}
			got := fmt.Sprintf("$ dib %s\nexit %d\n--- stdout\n%s--- stderr\n%s", strings.Join(tc.args, " "), code, stdout, errb.String())
			golden.Compare(t, filepath.Join(dir, tc.name+".golden"), []byte(got))
		})
	}
}

// TestNoColor follows no-color.org: any non-empty NO_COLOR disables
// colour; empty or unset does not.
func TestNoColor(t *testing.T) {
	for env, want := range map[string]bool{"": true, "NO_COLOR=": true, "NO_COLOR=0": false, "NO_COLOR=1": false, "NO_COLOR=2": false, "NO_COLOR=false": false} {
		g := &Globals{Environ: []string{"PATH=/bin", env}}
		if got := g.colorAllowed(); got != want {
			t.Errorf("%q: colour %v, want %v", env, got, want)
		}
	}
	if (&Globals{NoColor: true, Environ: []string{}}).colorAllowed() {
		t.Error("--no-color")
	}
}

// TestFirstContact: dib alone prints help and exits 0; --version works.
func TestFirstContact(t *testing.T) {
	code, out, _ := runDib(t)
	if code != 0 || !strings.HasPrefix(out, "Usage: dib <command>") {
		t.Errorf("dib alone: %d %q", code, out)
	}
	code, out, _ = runDib(t, "--version")
	if code != 0 || !strings.HasPrefix(out, "dib ") {
		t.Errorf("--version: %d %q", code, out)
	}
}

// TestHelpTopics: dib help, dib help COMMAND, every topic, a typo.
func TestHelpTopics(t *testing.T) {
	code, out, _ := runDib(t, "help")
	if code != 0 || !strings.HasPrefix(out, "Usage: dib <command>") {
		t.Errorf("help: %d %q", code, out)
	}
	code, out, _ = runDib(t, "help", "plan")
	if code != 0 || !strings.HasPrefix(out, "Usage: dib plan") {
		t.Errorf("help plan: %d %q", code, out)
	}
	for _, topic := range []string{"elements", "phases", "block-device", "secrets", "caching", "exit-codes"} {
		code, out, _ := runDib(t, "help", topic)
		if code != 0 || len(out) < 200 {
			t.Errorf("help %s: %d %q", topic, code, out)
		}
	}
	code, _, errs := runDib(t, "help", "phase")
	if code != exitUsage || !strings.Contains(errs, `did you mean "phases"?`) {
		t.Errorf("help phase: %d %q", code, errs)
	}
}

// TestInit: dib init writes a Dibfile that validates and the schema its
// modeline names; it does not overwrite without --force.
func TestInit(t *testing.T) {
	dir := t.TempDir()
	df := filepath.Join(dir, "Dibfile")
	if code, _, errs := runDib(t, "init", "--distro", "ubuntu-minimal", "--layout", "gpt", "-o", df); code != 0 {
		t.Fatalf("init: %d %s", code, errs)
	}
	src, _ := os.ReadFile(df)
	if !strings.HasPrefix(string(src), "# yaml-language-server: $schema=dibfile.schema.json\n") {
		t.Errorf("modeline:\n%s", src)
	}
	if _, err := os.Stat(filepath.Join(dir, "dibfile.schema.json")); err != nil {
		t.Error(err)
	}
	if code, out, _ := runDib(t, "validate", df); code != 0 {
		t.Errorf("the starter Dibfile does not validate: %s", out)
	}
	if code, _, _ := runDib(t, "init", "-o", df); code != exitFailed {
		t.Errorf("overwrote without --force: %d", code)
	}
	if code, out, _ := runDib(t, "init", "--layout", "none", "-o", "-"); code != 0 || !strings.Contains(out, "outputs: [tar]") || strings.Contains(out, "$schema") {
		t.Errorf("init -o -: %d\n%s", code, out)
	}
}
