package spec

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
)

// editorDisagreements are the files where dib and yaml-language-server
// with the schema disagree, each with the reason: a rule no JSON Schema can
// say, or a file it validates no document of. yaml-language-server 1.25
// (package.json) validates draft 2020-12 (maxContains, dependentSchemas),
// and its YAML reader (yaml 2.8.3) reports its own stack overflow on deep
// nesting as an error at the place. Every other file must
// get the same verdict from both; schema/dibfile.schema.json says the rest
// (value rules: spec's TestValueRulesFromGo, TestValueRulesAgreeWithChecks).
var editorDisagreements = map[string]string{
	"06-empty.yaml":                 emptyFile,
	"07-only-comments.yaml":         emptyFile,
	"38-duplicate-image-names.yaml": "names must differ across images: a name is any string of the name grammar, not a finite set, and no JSON Schema keyword compares a member of one item with another item's (uniqueItems compares whole items; ajv's $data is no JSON Schema and no editor's)",
	"45-release-and-env.yaml":       "env's DIB_RELEASE may repeat release but not contradict it (likewise DIB_DISTRIBUTION_MIRROR and mirror): JSON Schema cannot compare two values of the file, and neither is a finite set to enumerate (a release is any string of the release grammar: the compiler, not the file's checks, knows the releases and builds others with --allow-unknown-release; a mirror is any URL)",
}

// emptyFile is why no editor agrees on a file without a YAML node. dib is
// right to refuse it: read as an empty mapping ({}) it would still be
// refused, with DIB's "Please include an operating system element".
const emptyFile = "no YAML node: yaml-language-server (1.25 too) validates a document only when it has a root (JSONDocument.validate returns nothing without one), so no schema applies"

// editorClients returns the directory of the editor clients' npm packages
// (schema/testdata/editor) when module is installed there; otherwise the
// test fails under DIB_REQUIRE_INTEGRATION=1 and is skipped elsewhere.
// what names the clients in the message.
func editorClients(t *testing.T, module, what string) string {
	t.Helper()
	dir, _ := filepath.Abs("../schema/testdata/editor")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", module)); err != nil {
		if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("%s required (npm ci --prefix %s)", what, dir)
		}
		t.Skipf("%s not installed (npm ci --prefix %s)", what, dir)
	}
	return dir
}

// TestEditorAgreesWithDib runs a real yaml-language-server (the npm
// package, over stdio as an editor does) on examples/ and the valid and
// invalid corpus, and requires its verdict to be dib's on every file but
// the listed ones. Installed by .ci/run (npm ci); skipped elsewhere unless
// DIB_REQUIRE_INTEGRATION=1.
func TestEditorAgreesWithDib(t *testing.T) {
	dir := editorClients(t, "yaml-language-server", "yaml-language-server is")
	if testing.Short() {
		t.Skip("starts yaml-language-server (about 10 s)")
	}
	var editor map[string][]struct {
		Line     int    `json:"line"`
		Severity int    `json:"severity"`
		Message  string `json:"message"`
	}
	files := runClient(t, dir, "check.js", &editor)
	agrees(t, files, "yaml-language-server", "editorDisagreements", editorDisagreements, func(f string) (bool, string) {
		for _, d := range editor[f] {
			if d.Severity == 1 {
				return true, d.Message
			}
		}
		return false, ""
	})
}

// runClient runs the editor client script of dir (node) with the schema
// over examples/ and the valid and invalid corpus, decodes its JSON answer
// into v, and returns the files, sorted.
func runClient(t *testing.T, dir, script string, v any) []string {
	t.Helper()
	var files []string
	for _, g := range []string{"../examples/*.yaml", "testdata/valid/*.yaml", "testdata/invalid/*.yaml"} {
		m, _ := filepath.Glob(g)
		files = append(files, m...)
	}
	sort.Strings(files)
	out, err := exec.Command("node", append([]string{filepath.Join(dir, script), "../schema/dibfile.schema.json"}, files...)...).Output()
	if err != nil {
		t.Fatalf("node %s: %v", script, err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatal(err)
	}
	return files
}

// agrees requires the client's verdict on each file (rejects: whether and
// the first error) to be dib's, except on the files of exceptions (named
// list in messages), which must still disagree.
func agrees(t *testing.T, files []string, client, list string, exceptions map[string]string, rejects func(file string) (bool, string)) {
	t.Helper()
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, ds := Load(f, src, func(string) (string, bool) { return "x", true })
		dibRejects := ds.HasErrors()
		clientRejects, first := rejects(f)
		reason, listed := exceptions[filepath.Base(f)]
		switch {
		case dibRejects == clientRejects && listed:
			t.Errorf("%s: dib and %s now agree; remove it from %s (%s)", f, client, list, reason)
		case dibRejects != clientRejects && !listed:
			t.Errorf("%s: dib rejects: %v (%v), %s rejects: %v (%s)", f, dibRejects, ds, client, clientRejects, first)
		}
	}
}

// ajvDisagreements are the files where dib and ajv (draft 2020-12, every
// keyword of the schema) disagree, each with the reason.
var ajvDisagreements = map[string]string{
	"06-empty.yaml":                 "no YAML node: ajv-check.js, as yaml-language-server, validates no document",
	"07-only-comments.yaml":         "no YAML node: ajv-check.js, as yaml-language-server, validates no document",
	"38-duplicate-image-names.yaml": editorDisagreements["38-duplicate-image-names.yaml"],
	"45-release-and-env.yaml":       editorDisagreements["45-release-and-env.yaml"],
}

// TestAjvAgreesWithDib runs ajv, which implements every keyword of the
// schema (maxContains, dependentSchemas included), on the same files as
// TestEditorAgreesWithDib (ajv-check.js), and requires its verdict to be
// dib's on every file but the listed ones.
func TestAjvAgreesWithDib(t *testing.T) {
	dir := editorClients(t, "yaml", "ajv and yaml are")
	var ajv map[string]struct {
		Rejects bool   `json:"rejects"`
		Message string `json:"message"`
	}
	files := runClient(t, dir, "ajv-check.js", &ajv)
	agrees(t, files, "ajv", "ajvDisagreements", ajvDisagreements, func(f string) (bool, string) {
		return ajv[f].Rejects, ajv[f].Message
	})
}
