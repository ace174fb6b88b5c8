package plan

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// scriptA is the content of the sample plan's one script, and aaa its digest.
const scriptA = "#!/bin/sh\necho a\n"

var aaa = func() string { h := sha256.Sum256([]byte(scriptA)); return hex.EncodeToString(h[:]) }()

func samplePlan() *Plan {
	return &Plan{
		FormatVersion: FormatVersion,
		DibVersion:    "test",
		Image:         Image{Name: "img", Distro: "debian-minimal", Arch: "amd64"},
		Env: []EnvVar{
			{Name: "DIB_RELEASE", Value: "bookworm", Origin: Origin{Kind: "default"}},
			{Name: "DIB_DEV_USER_PASSWORD", Value: Redacted, Secret: true, Origin: Origin{Kind: "dibfile", File: "Dibfile", Line: 3, Col: 5}},
		},
		Files: []File{{Path: "install.d/10-a", Mode: 0o755, SHA256: aaa, Size: int64(len(scriptA)), Element: "x"}},
		Blobs: map[string][]byte{aaa: []byte(scriptA)},
		Steps: []Step{
			{ID: "boot", Kind: KindBootstrap, Title: "bootstrap", Where: Host, Bootstrap: &Bootstrap{Provider: "mmdebstrap", Suite: "bookworm"}},
			{ID: "hooks", Kind: KindHooks, Title: "hooks", Deps: []string{"boot"}, Hooks: &Hooks{Files: 1}},
			{ID: "install", Kind: KindPhase, Title: "phase install.d", Where: Chroot, Deps: []string{"hooks"}, Env: []string{"DIB_RELEASE", "DIB_DEV_USER_PASSWORD"},
				Phase: &Phase{Name: "install.d", Where: Chroot, Scripts: []Script{{Name: "10-a", Element: "x", Path: "install.d/10-a", SHA256: aaa}}}},
			{ID: "tar", Kind: KindOutput, Title: "output tar", Deps: []string{"install"}, Output: &Output{Format: "tar", Path: "img.tar"}},
		},
	}
}

func sealed(t *testing.T, mutate func(*Plan), secret string) *Plan {
	t.Helper()
	p := samplePlan()
	if mutate != nil {
		mutate(p)
	}
	p.Secrets = map[string]string{"DIB_DEV_USER_PASSWORD": secret}
	if err := p.Seal(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSealDeterministicAndDepsRewritten(t *testing.T) {
	a, b := sealed(t, nil, "pw"), sealed(t, nil, "pw")
	if a.ID != b.ID || a.Steps[3].ID != b.Steps[3].ID {
		t.Fatal("same inputs gave different IDs")
	}
	if a.Steps[1].Deps[0] != a.Steps[0].ID || len(a.Steps[0].ID) != 64 {
		t.Fatalf("deps not rewritten: %v", a.Steps[1].Deps)
	}
}

// TestHashCompleteness changes one input at a time: the step that uses it
// and everything downstream must change ID; steps upstream must not.
func TestHashCompleteness(t *testing.T) {
	base := sealed(t, nil, "pw")
	for _, tc := range []struct {
		name      string
		mutate    func(*Plan)
		secret    string
		firstStep int // index of the first step whose ID must change
	}{
		{"bootstrap param", func(p *Plan) { p.Steps[0].Bootstrap.Suite = "trixie" }, "pw", 0},
		{"hook file content", func(p *Plan) { p.Files[0].SHA256 = "bbb" }, "pw", 1},
		{"hook file mode", func(p *Plan) { p.Files[0].Mode = 0o644 }, "pw", 1},
		{"script digest", func(p *Plan) { p.Steps[2].Phase.Scripts[0].SHA256 = "ccc" }, "pw", 2},
		{"env value", func(p *Plan) { p.Env[0].Value = "trixie" }, "pw", 2},
		{"where", func(p *Plan) { p.Steps[2].Where = Host }, "pw", 2},
		{"tools", func(p *Plan) { p.Steps[3].Tools = []string{"tar"} }, "pw", 3},
		{"output path", func(p *Plan) { p.Steps[3].Output.Path = "x.tar" }, "pw", 3},
	} {
		got := sealed(t, tc.mutate, tc.secret)
		for i := range base.Steps {
			changed := got.Steps[i].ID != base.Steps[i].ID
			if want := i >= tc.firstStep; changed != want {
				t.Errorf("%s: step %d changed=%v, want %v", tc.name, i, changed, want)
			}
		}
		if got.ID == base.ID {
			t.Errorf("%s: plan ID unchanged", tc.name)
		}
	}
	// Cosmetic fields stay out of the ID.
	got := sealed(t, func(p *Plan) { p.Steps[2].Title = "renamed"; p.Steps[2].Origin = &Origin{Kind: "element"} }, "pw")
	if got.Steps[2].ID != base.Steps[2].ID {
		t.Error("title/origin changed the step ID")
	}
}

// TestSecretLeavesNoTrace: nothing in a plan depends on a secret's value,
// so neither the plan file nor the plan ID an image carries can be used to
// test a guess of it.
func TestSecretLeavesNoTrace(t *testing.T) {
	a, b := sealed(t, nil, "hunter2"), sealed(t, nil, "correct horse battery staple")
	var ja, jb bytes.Buffer
	if err := a.WriteJSON(&ja); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteJSON(&jb); err != nil {
		t.Fatal(err)
	}
	if a.ID != b.ID || !bytes.Equal(ja.Bytes(), jb.Bytes()) {
		t.Fatal("the plan depends on the secret's value")
	}
	for _, s := range a.Steps {
		lines, err := a.Explain(s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(strings.Join(lines, "\n"), "hunter2") {
			t.Fatal("secret in --explain")
		}
	}
}

func TestSealErrors(t *testing.T) {
	p := samplePlan()
	p.Steps[1].Deps = []string{"tar"} // a later step
	if err := p.Seal(); err == nil || !strings.Contains(err.Error(), "not an earlier step") {
		t.Errorf("err = %v", err)
	}
	p = samplePlan()
	p.Steps[1].ID = "boot"
	if err := p.Seal(); err == nil || !strings.Contains(err.Error(), "not unique") {
		t.Errorf("err = %v", err)
	}
	p = samplePlan()
	p.Steps[2].Env = append(p.Steps[2].Env, "NOPE")
	if err := p.Seal(); err == nil || !strings.Contains(err.Error(), "unknown variable NOPE") {
		t.Errorf("err = %v", err)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	p := sealed(t, nil, "pw")
	var a, b bytes.Buffer
	if err := p.WriteJSON(&a); err != nil {
		t.Fatal(err)
	}
	q, err := Read(bytes.NewReader(a.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("round trip differs:\n%s\n%s", a.String(), b.String())
	}
	if strings.Contains(a.String(), "pw") {
		t.Fatal("secret in plan JSON")
	}
}

func TestReadRejects(t *testing.T) {
	for name, tc := range map[string]struct{ in, want string }{
		"version":  {`{"format_version": 99, "dib_version": "9"}`, "format version 99"},
		"missing":  {`{"steps": []}`, "no format_version"},
		"not json": {`nope`, "not a dib plan file"},
		"unknown":  {`{"format_version": ` + fmt.Sprint(FormatVersion) + `, "bogus": 1}`, "bogus"},
		"null":     {`{"format_version": null}`, "no format_version"},
		"float":    {`{"format_version": 1e300}`, "format_version 1e300 is not a version number"},
		// A huge value is cut in the message, not echoed whole.
		"huge":     {`{"format_version": 1` + strings.Repeat("0", 100000) + `}`, "format_version 1000"},
		"huge dib": {`{"format_version": ` + fmt.Sprint(FormatVersion+1) + `, "dib_version": "` + strings.Repeat("9", 100000) + `"}`, "(100000 bytes)"},
	} {
		_, err := Read(strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
		if err != nil && len(err.Error()) > 1000 {
			t.Errorf("%s: a %d-byte error", name, len(err.Error()))
		}
	}
}

// TestReadAfterBOM: a plan file an editor saved with a byte order mark
// reads as the same plan, as a Dibfile does.
func TestReadAfterBOM(t *testing.T) {
	p := sealed(t, nil, "pw")
	var a bytes.Buffer
	if err := p.WriteJSON(&a); err != nil {
		t.Fatal(err)
	}
	q, err := Read(bytes.NewReader(append([]byte("\ufeff"), a.Bytes()...)))
	if err != nil {
		t.Fatal(err)
	}
	if q.ID != p.ID {
		t.Errorf("plan ID %s after a BOM, want %s", q.ID, p.ID)
	}
}

func TestCompare(t *testing.T) {
	a := sealed(t, nil, "pw")
	if d := Compare(a, sealed(t, nil, "pw")); !d.Empty() || !d.SameID {
		t.Fatalf("identical plans differ: %+v", d)
	}
	b := sealed(t, func(p *Plan) {
		p.Files[0].SHA256 = "bbb"
		p.Blobs["bbb"] = []byte("#!/bin/sh\necho b\n")
		p.Steps[2].Phase.Scripts[0].SHA256 = "bbb"
		p.Env[0].Value = "trixie"
		p.Steps[2].Phase.Packages = []Package{{Name: "vim", Mapped: []string{"vim"}, Element: "x"}}
		p.Steps = append(p.Steps, Step{ID: "raw", Kind: KindOutput, Title: "output raw", Output: &Output{Format: "raw", Path: "img.raw"}})
		p.Outputs = append(p.Outputs, Output{Format: "raw", Path: "img.raw"})
	}, "pw")
	d := Compare(a, b)
	js, _ := json.MarshalIndent(d, "", " ")
	for _, want := range []string{
		`"title": "phase install.d"`, `"cause": "its own inputs changed"`, `"title": "output tar"`, `"cause": "a step it depends on changed"`,
		`"change": "added"`, `"title": "output raw"`,
		`"unified": "--- a/install.d/10-a\n+++ b/install.d/10-a\n@@ -1,2 +1,2 @@\n #!/bin/sh\n-echo a\n+echo b\n"`,
		`"key": "DIB_RELEASE"`, `"new": "trixie"`, `"key": "install.d install vim (x)"`, `"key": "img.raw"`,
	} {
		if !strings.Contains(string(js), want) {
			t.Errorf("diff lacks %s:\n%s", want, js)
		}
	}
}

func TestUnified(t *testing.T) {
	a := "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n"
	b := "1\n2\nthree\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n"
	want := "--- a\n+++ b\n@@ -1,6 +1,6 @@\n 1\n 2\n-3\n+three\n 4\n 5\n 6\n@@ -10,3 +10,4 @@\n 10\n 11\n 12\n+13\n"
	if got := Unified("a", "b", a, b); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if Unified("a", "b", "x\n", "x\n") != "" {
		t.Error("equal texts gave a diff")
	}
}

// TestExplainReproducesID: the explained lines of every step, one that
// sees a secret too, hash to its ID, so --explain shows exactly what the
// ID covers.
func TestExplainReproducesID(t *testing.T) {
	p := sealed(t, nil, "pw")
	for i := range p.Steps {
		lines, err := p.Explain(p.Steps[i].ID[:10])
		if err != nil {
			t.Fatal(err)
		}
		if got := digestLines(lines); got != p.Steps[i].ID {
			t.Errorf("step %d: explained digest %s != ID %s", i, got, p.Steps[i].ID)
		}
	}
	lines, _ := p.Explain(p.Steps[2].ID)
	if !strings.Contains(strings.Join(lines, "\n"), "env DIB_DEV_USER_PASSWORD <secret>") {
		t.Errorf("secret not redacted in explain: %v", lines)
	}
	if _, err := p.Explain("zzzz"); err == nil {
		t.Error("unknown step explained")
	}
}
