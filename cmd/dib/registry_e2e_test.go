package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/dibuild/dib/internal/registrytest"
	"github.com/dibuild/dib/runtime/cache"
)

// eventsOfType returns the JSON events of one type of a `dib apply --json`.
func eventsOfType(events, typ string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(events), "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil && e["type"] == typ {
			out = append(out, e)
		}
	}
	return out
}

// planStatuses maps the title of each step of a `dib plan --no-color` to
// what the build cache will do with it (the line under the step's).
func planStatuses(text string) map[string]string {
	step := regexp.MustCompile(`^ *\d+\. (.+?)(?: \[[a-z]+\])?  [0-9a-f]{12}`)
	out := map[string]string{}
	lines := strings.Split(text, "\n")
	for i := 0; i+1 < len(lines); i++ {
		if m := step.FindStringSubmatch(lines[i]); m != nil {
			out[m[1]] = strings.TrimSpace(lines[i+1])
		}
	}
	return out
}

// registryRoundTrip is the registry cache (issue [N]) on the tarball
// build of TestDebianTarballEndToEnd, whose local cache (DIB_CACHE_DIR)
// holds every step of dibfile and whose cold tar digest is coldTar:
// push it to a real registry, then build from empty caches pulling from
// it. withACI is dibfile plus an aci output, a step the registry lacks;
// coldEntries is the cold tar's tarEntriesDigest.
func registryRoundTrip(t *testing.T, dibfile, withACI, coldTar, coldEntries string) {
	reg := registrytest.Start(t)
	ref := reg.Ref("dib/cache")

	// Push: nothing runs, every entry goes to the registry.
	code, stdout, stderr := runDib(t, "apply", "--json", "--no-color", "--cache-to", ref, "-O", t.TempDir(), dibfile)
	if ran := stepsRun(t, stdout); code != 0 || len(ran) != 0 {
		t.Fatalf("push: exit %d, ran %q\n%s", code, ran, stderr)
	}
	if n := len(eventsOfType(stdout, "cache-pushed")); n == 0 {
		t.Fatalf("nothing pushed\n%s", stdout)
	}

	// Another machine, before it builds: dib plan shows what the apply
	// below takes from the registry as cached, and only the aci as
	// running; it writes nothing.
	empty := filepath.Join(t.TempDir(), "cache")
	code, planText, stderr := runDib(t, "plan", "--no-color", "--no-host-check", "--cache-dir", empty, "--cache-from", ref, withACI)
	status := planStatuses(planText)
	var run []string
	for title, st := range status {
		if !strings.HasPrefix(st, "cached") {
			run = append(run, title+": "+st)
		}
	}
	if code != 0 || len(status) == 0 || !reflect.DeepEqual(run, []string{"output aci: will run: not in the cache nor in the registry " + ref}) ||
		!strings.HasSuffix(status["output tar"], "(pulled from the registry "+ref+")") {
		t.Errorf("dib plan --cache-from: exit %d, steps that run %q\n%s%s", code, run, planText, stderr)
	}
	if _, err := os.Stat(empty); !os.IsNotExist(err) {
		t.Errorf("dib plan made the cache directory: %v", err)
	}

	// Another machine: an empty cache, the registry warm. Only the step
	// the registry lacks (the aci) runs, on the final state pulled from
	// it; the tar pulled and the tree in the aci are the cold build's.
	out := t.TempDir()
	code, stdout, stderr = runDib(t, "apply", "--json", "--no-color", "--cache-dir", t.TempDir(), "--cache-from", ref, "-O", out, withACI)
	if ran := stepsRun(t, stdout); code != 0 || !reflect.DeepEqual(ran, []string{"output aci"}) {
		t.Fatalf("from the registry: exit %d, ran %q, want only the aci\n%s", code, ran, stderr)
	}
	if len(eventsOfType(stdout, "cache-pulled")) == 0 {
		t.Errorf("no cache-pulled events\n%s", stdout)
	}
	if got := sha256File(t, filepath.Join(out, "debian-rootfs.tar")); got != coldTar {
		t.Error("the tar pulled from the registry differs from the cold build's")
	}
	if got := tarEntriesDigest(t, filepath.Join(out, "debian-rootfs.aci"), "rootfs"); got != coldEntries {
		t.Error("the tree in the aci built on the state pulled from the registry differs from the cold build's tar")
	}

	// A damaged layer in the registry's storage (the tar output's): it is
	// reported and not used, and only the tar is made again, from the
	// final state pulled from the registry.
	c, err := cache.OpenExisting(os.Getenv("DIB_CACHE_DIR"))
	if err != nil || c == nil {
		t.Fatalf("the tarball build's cache: %v", err)
	}
	list, _ := c.List()
	var blob string
	for _, m := range list {
		for _, f := range m.Files {
			if slices.Contains(m.Outputs, "debian-rootfs.tar") && f.Name == m.OutputsPayload() {
				blob = reg.BlobPath(f.SHA256)
			}
		}
	}
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatalf("the tar output's layer in the registry: %v", err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(blob, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out = t.TempDir()
	code, stdout, stderr = runDib(t, "apply", "--json", "--no-color", "--cache-dir", t.TempDir(), "--cache-from", ref, "-O", out, dibfile)
	if ran := stepsRun(t, stdout); code != 0 || !reflect.DeepEqual(ran, []string{"output tar"}) {
		t.Fatalf("with a corrupt layer: exit %d, ran %q, want only the tar\n%s", code, ran, stderr)
	}
	bad := eventsOfType(stdout, "cache-corrupt")
	if len(bad) != 1 || !strings.Contains(bad[0]["error"].(string), ref) {
		t.Errorf("cache-corrupt events: %v", bad)
	}
	if got := sha256File(t, filepath.Join(out, "debian-rootfs.tar")); got != coldTar {
		t.Error("the tar rebuilt after the corrupt layer differs from the cold build's")
	}
}
