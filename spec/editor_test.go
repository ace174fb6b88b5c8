package spec

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
)

// editorDisagreements are the files where dib and an editor with the
// schema disagree, each with the reason: rules no JSON Schema can say
// (uniqueness by a member, keys that must agree with each other, values
// checked by their meaning) and YAML-level problems the editor leaves to
// its parser. Every other file must get the same verdict from both.
var editorDisagreements = map[string]string{
	"06-empty.yaml":                 "an empty document is not validated by yaml-language-server",
	"07-only-comments.yaml":         "an empty document is not validated by yaml-language-server",
	"38-duplicate-image-names.yaml": "uniqueness of a member (name) cannot be said in JSON Schema",
	"40-duplicate-output.yaml":      "\"qcow2\" and {format: qcow2} are the same output; JSON Schema's uniqueItems compares values",
	"45-release-and-env.yaml":       "env's DIB_RELEASE must agree with release: a rule on values",
	"65-limit-nesting.yaml":         "input limits (spec/limits) are dib's, before parsing",
}

// TestEditorAgreesWithDib runs a real yaml-language-server (the npm
// package, over stdio as an editor does) on examples/ and the valid and
// invalid corpus, and requires its verdict to be dib's on every file but
// the listed ones. Installed by .ci/run (npm ci); skipped elsewhere unless
// DIB_REQUIRE_INTEGRATION=1.
func TestEditorAgreesWithDib(t *testing.T) {
	dir, _ := filepath.Abs("../schema/testdata/editor")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "yaml-language-server")); err != nil {
		if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("yaml-language-server is required (npm ci --prefix %s)", dir)
		}
		t.Skipf("yaml-language-server is not installed (npm ci --prefix %s)", dir)
	}
	if testing.Short() {
		t.Skip("starts yaml-language-server (about 10 s)")
	}
	var files []string
	for _, g := range []string{"../examples/*.yaml", "testdata/valid/*.yaml", "testdata/invalid/*.yaml"} {
		m, _ := filepath.Glob(g)
		files = append(files, m...)
	}
	sort.Strings(files)
	out, err := exec.Command("node", append([]string{filepath.Join(dir, "check.js"), "../schema/dibfile.schema.json"}, files...)...).Output()
	if err != nil {
		t.Fatalf("yaml-language-server: %v", err)
	}
	var editor map[string][]struct {
		Line     int    `json:"line"`
		Severity int    `json:"severity"`
		Message  string `json:"message"`
	}
	if err := json.Unmarshal(out, &editor); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, ds := Load(f, src, func(string) (string, bool) { return "x", true })
		dibRejects := ds.HasErrors()
		editorRejects := false
		var first string
		for _, d := range editor[f] {
			if d.Severity == 1 {
				editorRejects = true
				if first == "" {
					first = d.Message
				}
			}
		}
		reason, listed := editorDisagreements[filepath.Base(f)]
		switch {
		case dibRejects == editorRejects && listed:
			t.Errorf("%s: dib and the editor now agree; remove it from editorDisagreements (%s)", f, reason)
		case dibRejects != editorRejects && !listed:
			t.Errorf("%s: dib rejects: %v (%v), yaml-language-server rejects: %v (%s)", f, dibRejects, ds, editorRejects, first)
		}
	}
}
