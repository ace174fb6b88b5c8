package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func runDib(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestPlanFileRoundTrip: a plan written with -o is the plan `dib plan
// --json` prints, and diffing it against its Dibfile finds nothing.
func TestPlanFileRoundTrip(t *testing.T) {
	t.Setenv("DEV_PASSWORD", "pw")
	ex := "../../examples/debian-vm.yaml"
	out := filepath.Join(t.TempDir(), "plan.json")
	if code, _, errs := runDib(t, "plan", "-o", out, ex); code != 0 {
		t.Fatalf("plan -o: %d %s", code, errs)
	}
	code, js, errs := runDib(t, "plan", "--json", ex)
	if code != 0 {
		t.Fatalf("plan --json: %d %s", code, errs)
	}
	file, _ := os.ReadFile(out)
	if !bytes.Equal(file, []byte(js)) {
		t.Error("plan -o and plan --json differ")
	}
	if strings.Contains(js, `"pw"`) {
		t.Error("secret in plan JSON")
	}
	if code, outp, errs := runDib(t, "diff", out, ex); code != 0 {
		t.Errorf("diff plan file vs its Dibfile: exit %d\n%s%s", code, outp, errs)
	}
}

// TestPlanFileAfterBOM: a plan file saved with a byte order mark (as
// editors on Windows do) is read as the plan it is, not as a Dibfile.
func TestPlanFileAfterBOM(t *testing.T) {
	out := filepath.Join(t.TempDir(), "plan.json")
	if code, _, errs := runDib(t, "plan", "-o", out, "../../examples/debian-tarball.yaml"); code != 0 {
		t.Fatalf("plan -o: %d %s", code, errs)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, append([]byte("\ufeff"), b...), 0o644); err != nil {
		t.Fatal(err)
	}
	code, js, errs := runDib(t, "plan", "--json", out)
	if code != 0 || js != string(b) {
		t.Errorf("dib plan of the plan file after a BOM: exit %d, same plan %v\n%s", code, js == string(b), errs)
	}
}

// TestLargePlanFileRoundTrip: a plan file larger than a Dibfile may be (an
// element with a large file puts it in the plan's hook tree) reads back.
func TestLargePlanFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	hooks := filepath.Join(dir, "elements", "big", "root.d")
	if err := os.MkdirAll(hooks, 0o755); err != nil {
		t.Fatal(err)
	}
	// Incompressible, so the plan (base64 in JSON) is larger still.
	big := make([]byte, 2<<20)
	for i := range big {
		big[i] = byte(i*7919 + i/251)
	}
	if err := os.WriteFile(filepath.Join(hooks, "10-data"), big, 0o755); err != nil {
		t.Fatal(err)
	}
	df := filepath.Join(dir, "Dibfile")
	if err := os.WriteFile(df, []byte("name: big\ndistro: debian-minimal\nelements-path: [elements]\nelements: [big]\noutputs: [tar]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "plan.json")
	if code, _, errs := runDib(t, "plan", "-o", out, df); code != 0 {
		t.Fatalf("plan -o: %d %s", code, errs)
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() <= 2<<20 {
		t.Fatalf("plan file: %v", err)
	}
	if code, _, errs := runDib(t, "plan", out); code != 0 {
		t.Errorf("plan of the plan file: exit %d\n%s", code, errs)
	}
}

func TestDiffExitCodes(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.yaml")
	b := filepath.Join(dir, "b.yaml")
	os.WriteFile(a, []byte("name: x\ndistro: debian-minimal\noutputs: [tar]\n"), 0o644)
	os.WriteFile(b, []byte("name: x\ndistro: debian-minimal\noutputs: [tar, tgz]\n"), 0o644)
	if code, out, _ := runDib(t, "diff", a, a); code != exitOK || !strings.Contains(out, "No differences") {
		t.Errorf("same: %d %q", code, out)
	}
	if code, out, _ := runDib(t, "diff", a, b); code != exitDiffers || !strings.Contains(out, "+ output tgz") {
		t.Errorf("different: %d %q", code, out)
	}
	if code, _, _ := runDib(t, "diff", a, filepath.Join(dir, "missing.yaml")); code != exitFailed {
		t.Errorf("missing file: %d", code)
	}
	if code, _, _ := runDib(t, "diff", a); code != exitUsage {
		t.Errorf("one argument: %d", code)
	}
}

func TestPlanRenderings(t *testing.T) {
	ex := "../../examples/debian-tarball.yaml"
	code, dot, _ := runDib(t, "plan", "--dot", ex)
	if code != 0 || !strings.HasPrefix(dot, "digraph plan {") || !strings.Contains(dot, "->") {
		t.Errorf("dot: %d %q", code, dot)
	}
	code, text, _ := runDib(t, "plan", "--no-color", ex)
	for _, want := range []string{"Plan for image debian-rootfs", "Elements (", "Environment", "phase install.d", "Outputs", "Host tools"} {
		if !strings.Contains(text, want) {
			t.Errorf("text plan lacks %q", want)
		}
	}
	if strings.Contains(text, "\x1b[") {
		t.Error("colour when not on a terminal")
	}
	// --explain prints the labelled hash inputs of a step.
	code, js, _ := runDib(t, "plan", "--json", ex)
	i := strings.Index(js, `"id": "`)
	id := js[i+7 : i+7+64]
	j := strings.Index(js[i+80:], `"id": "`) // the first step's ID follows the plan ID
	step := js[i+80+j+7 : i+80+j+7+12]
	if code, exp, errs := runDib(t, "plan", "--explain", step, ex); code != 0 || !strings.Contains(exp, "salt dib-step-v1") || !strings.Contains(exp, "kind bootstrap") {
		t.Errorf("explain %s (plan %s): %d %q %s", step, id, code, exp, errs)
	}
}

// TestMultiImageSharesSteps: identical steps of two images share IDs.
func TestMultiImageSharesSteps(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "Dibfile")
	os.WriteFile(f, []byte("images:\n  - name: a\n    distro: debian-minimal\n    outputs: [tar]\n  - name: b\n    distro: debian-minimal\n    outputs: [tgz]\n"), 0o644)
	if code, _, errs := runDib(t, "plan", "-o", dir, f); code != 0 {
		t.Fatalf("%d %s", code, errs)
	}
	pa, _ := os.ReadFile(filepath.Join(dir, "a.plan.json"))
	pb, _ := os.ReadFile(filepath.Join(dir, "b.plan.json"))
	boot := func(js []byte) string {
		s := string(js)
		i := strings.Index(s, `"kind": "bootstrap"`)
		k := strings.LastIndex(s[:i], `"id": "`)
		return s[k+7 : k+7+64]
	}
	if boot(pa) != boot(pb) {
		t.Error("the same bootstrap has different IDs in two images")
	}
	if bytes.Equal(pa, pb) {
		t.Error("two different images have the same plan")
	}
}

func TestElementsFromDibfile(t *testing.T) {
	code, out, errs := runDib(t, "elements", "-f", "../../examples/debian-vm.yaml", "--list")
	if code != 0 {
		t.Fatalf("%d %s", code, errs)
	}
	for _, want := range []string{"base\n", "block-device-efi\n", "debian-minimal\n", "devuser\n", "vm\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("elements -f lacks %q:\n%s", want, out)
		}
	}
	if code, _, _ := runDib(t, "elements", "-f", "nope.yaml"); code != exitFailed {
		t.Errorf("missing Dibfile: exit %d", code)
	}
}

// TestPlanShowsHostLimits: a layout this host cannot assemble (LVM thin
// pools need device-mapper) makes `dib plan` exit 1 with the reason, after
// the plan; --no-host-check plans for another machine.
func TestPlanShowsHostLimits(t *testing.T) {
	code, out, errs := runDib(t, "plan", "--no-color", "testdata/thin-lvm.yaml")
	if code != exitFailed || !strings.Contains(out, "Plan for image thin") {
		t.Fatalf("%d %s", code, errs)
	}
	if !strings.Contains(errs, "error: dib apply cannot build image thin here: pool: logical volume of type thin-pool") {
		t.Errorf("no host-limit error:\n%s", errs)
	}
	if code, _, errs := runDib(t, "plan", "--no-host-check", "testdata/thin-lvm.yaml"); code != 0 {
		t.Errorf("--no-host-check: %d %s", code, errs)
	}
}

func TestElementsListBuiltins(t *testing.T) {
	code, out, _ := runDib(t, "elements", "--list")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"base\n", "debian-minimal\n", "vm\n", "block-device-efi\n", "package-installs\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("built-in list lacks %q", want)
		}
	}
	if code, _, _ := runDib(t, "elements"); code != exitUsage {
		t.Errorf("no elements, no --list: exit %d", code)
	}
}

// TestPlanEscapesControlCharacters: ESC and BEL in a Dibfile value are
// shown escaped by dib plan, never sent to the terminal.
func TestPlanEscapesControlCharacters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "esc.yaml")
	os.WriteFile(path, []byte("name: esc\ndistro: debian-minimal\noutputs: [tar]\nenv:\n  FOO: \"\\e[2Jhidden\\a\"\n"), 0o644)
	code, out, errs := runDib(t, "plan", path)
	if code != 0 {
		t.Fatalf("plan: %d %s", code, errs)
	}
	if strings.ContainsAny(out, "\x1b\x07") {
		t.Error("control characters reach the terminal")
	}
	if !strings.Contains(out, `FOO=\x1b[2Jhidden\x07`) {
		t.Errorf("escaped value not shown:\n%s", out)
	}
}

// TestValidateEndlessInput: /dev/zero is read up to the size limit and
// refused at the byte that passes it, not read until memory runs out.
func TestValidateEndlessInput(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	code, out, _ := runDib(t, "validate", "/dev/zero")
	if code != exitFailed || !strings.Contains(out, "/dev/zero:1:1048577: error: the file is larger than 1 MiB") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

// TestPlanCacheFrom: dib plan asks the registry of --cache-from too (the
// steps it holds are shown as cached in the end-to-end registry test); a
// registry that cannot be reached is one warning, however many images,
// and the steps show as without it; nothing is written; --cache-from
// needs a local cache, as for dib apply.
func TestPlanCacheFrom(t *testing.T) {
	down := "http://127.0.0.1:1/dib/cache" // port 1: nothing listens
	empty := filepath.Join(t.TempDir(), "cache")
	code, out, errs := runDib(t, "plan", "--no-color", "--no-host-check", "--cache-dir", empty, "--cache-from", down, "../../examples/multi-image.yaml")
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	if n := strings.Count(errs, "cache registry "+down+" not used"); n != 1 || !strings.Contains(errs, "warning") {
		t.Errorf("the unreachable registry is said %d times, want once as a warning:\n%s", n, errs)
	}
	// Each image: its bootstrap (and its outputs, whose keys follow the
	// state's) in neither; nothing cached.
	boot := regexp.MustCompile(`\d+\. bootstrap .*\n +will run: not in the cache nor in the registry ` + regexp.QuoteMeta(down) + "\n")
	if n := len(boot.FindAllString(out, -1)); n != 2 || strings.Contains(out, "cached") {
		t.Errorf("%d images' bootstraps say the registry lacks them, want 2:\n%s", n, out)
	}
	if _, err := os.Stat(empty); !os.IsNotExist(err) {
		t.Errorf("dib plan made the cache directory: %v", err)
	}
	// --cache-dir off: no cache, no status.
	code, out, errs = runDib(t, "plan", "--no-color", "--cache-dir", "off", "../../examples/debian-tarball.yaml")
	if code != exitOK || strings.Contains(out, "will run") || strings.Contains(out, "cached") {
		t.Errorf("--cache-dir off: exit %d\n%s%s", code, out, errs)
	}
	code, _, errs = runDib(t, "plan", "--cache-dir", "off", "--cache-from", down, "../../examples/debian-tarball.yaml")
	if code != exitUsage || !strings.Contains(errs, "--cache-from needs a local build cache") {
		t.Errorf("--cache-dir off --cache-from: exit %d\n%s", code, errs)
	}
	code, _, errs = runDib(t, "plan", "--cache-dir", empty, "--cache-from", "registry.example.org:5000/dib:latest", "../../examples/debian-tarball.yaml")
	if code != exitUsage || !strings.Contains(errs, "--cache-from: cache registry") {
		t.Errorf("a tagged reference: exit %d\n%s", code, errs)
	}
}
