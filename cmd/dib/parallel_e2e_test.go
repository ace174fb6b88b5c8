package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// parallelElements writes the test's elements: ok-marker (install.d
// writes a file), fails (install.d exits 1) and slow (install.d sleeps far
// longer than the test runs).
func parallelElements(t *testing.T, dir string) string {
	t.Helper()
	els := filepath.Join(dir, "elements")
	for name, script := range map[string]string{
		"ok-marker": "#!/bin/bash\nset -e\necho parallel > /etc/ok-marker\n",
		"fails":     "#!/bin/bash\necho this element fails on purpose >&2\nexit 1\n",
		"slow":      "#!/bin/bash\nsleep 3017\n",
	} {
		d := filepath.Join(els, name, "install.d")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "50-"+name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return els
}

// parallelDibfile is a multi-image Dibfile of minbase trees written as
// tars, the cheapest real builds, sharing their bootstrap.
func parallelDibfile(t *testing.T, dir, name, elements string, images ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("defaults:\n  elements-path: [" + elements + "]\n  distro: debian-minimal\n  release: bookworm\n  arch: amd64\n  outputs: [tar]\nimages:\n")
	for _, im := range images {
		n, el, _ := strings.Cut(im, ":")
		b.WriteString("  - name: " + n + "\n")
		if el != "" {
			b.WriteString("    elements: [" + el + "]\n")
		}
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type parallelEvent struct {
	Type, Image, Kind, Holder string
}

func parallelEvents(t *testing.T, stdout string) []parallelEvent {
	t.Helper()
	var evs []parallelEvent
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var e parallelEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("not a JSON event: %q", line)
		}
		evs = append(evs, e)
	}
	return evs
}

// noLeftovers checks that a build left no mount, work directory, apt
// cache lock or process behind.
func noLeftovers(t *testing.T, work string) {
	t.Helper()
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), work) {
		t.Errorf("a build mount is left:\n%s", mi)
	}
	if ents, _ := os.ReadDir(work); len(ents) != 0 {
		t.Errorf("the work directory is not empty: %v", ents)
	}
	home, _ := os.UserHomeDir()
	if locks, _ := filepath.Glob(filepath.Join(home, ".cache", "image-create", "apt", "*.lock")); len(locks) != 0 {
		t.Errorf("apt cache locks left: %v", locks)
	}
	if out, _ := exec.Command("pgrep", "-f", "sleep 3017").Output(); len(out) != 0 {
		t.Errorf("a process of a stopped build is left: pids %s", out)
	}
}

// TestParallelImagesEndToEnd builds a multi-image Dibfile three at a time
// with one cold cache: the bootstrap the images share runs once (the
// others wait for it and restore it, as the events say), one image's
// install.d fails while the other two finish, and the summary and exit
// code say so. Then --fail-fast: one image fails, the running one is
// stopped and cleaned up, the third never starts.
func TestParallelImagesEndToEnd(t *testing.T) {
	requireE2E(t)
	// Written in session 3 but not yet run: the machine's heavy lock was
	// taken until the freeze. Remove this gate once it has passed once.
	if os.Getenv("DIB_PARALLEL_E2E") != "1" {
		t.Skip("not yet run on a real build: set DIB_PARALLEL_E2E=1")
	}
	dir := t.TempDir()
	els := parallelElements(t, dir)
	t.Setenv("DIB_CACHE_DIR", filepath.Join(dir, "cache")) // cold: the shared bootstrap must run
	out, work := filepath.Join(dir, "out"), filepath.Join(dir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	dibfile := parallelDibfile(t, dir, "Dibfile", els, "pa", "pb:ok-marker", "pbad:fails")
	code, stdout, stderr := runDib(t, "apply", "--install-host-tools", "--json", "--no-color", "-j", "3", "-O", out, "--work-dir", work, dibfile)
	if code != exitFailed {
		t.Fatalf("exit %d, want %d (one image fails)\n%s", code, exitFailed, stderr)
	}
	bootRuns, bootCached, waits := 0, map[string]bool{}, 0
	ended := map[string]string{}
	for _, e := range parallelEvents(t, stdout) {
		switch {
		case e.Type == "step-started" && e.Kind == "bootstrap":
			bootRuns++
		case e.Type == "step-cached" && e.Kind == "bootstrap":
			bootCached[e.Image] = true
		case e.Type == "step-waiting":
			waits++
		case e.Type == "build-finished" || e.Type == "build-failed":
			ended[e.Image] = e.Type
		}
	}
	if bootRuns != 1 || len(bootCached) != 2 || waits == 0 {
		t.Errorf("the shared bootstrap ran %d times, was taken from the cache by %v, %d waits; want once, by the two others", bootRuns, bootCached, waits)
	}
	if ended["pa"] != "build-finished" || ended["pb"] != "build-finished" || ended["pbad"] != "build-failed" {
		t.Errorf("builds ended %v", ended)
	}
	for _, f := range []string{"pa.tar", "pb.tar"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("output missing: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "pbad.tar")); err == nil {
		t.Error("the failed image left an output")
	}
	if m := sh(t, "tar", "-xOf", filepath.Join(out, "pb.tar"), "--wildcards", "*etc/ok-marker"); m != "parallel\n" {
		t.Errorf("pb's marker: %q", m)
	}
	for _, want := range []string{"IMAGE", "\npbad  ", "failed", "image pbad: 50-fails failed in install.d", "this element fails on purpose"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	noLeftovers(t, work)

	// --fail-fast, two at a time, on the warm cache: pbad fails while
	// pslow sleeps in install.d; pslow is stopped, pnever never starts.
	out2 := filepath.Join(dir, "out2")
	ff := parallelDibfile(t, dir, "Dibfile.ff", els, "pslow:slow", "pbad:fails", "pnever")
	code, stdout, stderr = runDib(t, "apply", "--json", "--no-color", "-j", "2", "--fail-fast", "-O", out2, "--work-dir", work, ff)
	if code != exitFailed {
		t.Fatalf("--fail-fast: exit %d\n%s", code, stderr)
	}
	started := map[string]bool{}
	for _, e := range parallelEvents(t, stdout) {
		if e.Type == "build-started" {
			started[e.Image] = true
		}
	}
	if !started["pslow"] || !started["pbad"] || started["pnever"] {
		t.Errorf("--fail-fast: started %v, want pslow and pbad only", started)
	}
	for _, want := range []string{"pslow   cancelled", "pbad    failed", "pnever  not started"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("--fail-fast summary lacks %q:\n%s", want, stderr)
		}
	}
	ents, _ := os.ReadDir(out2)
	for _, e := range ents {
		if e.Name() != "pslow.log" && e.Name() != "pbad.log" && e.Name() != ".dib" {
			t.Errorf("--fail-fast left %s in the output directory", e.Name())
		}
	}
	noLeftovers(t, work)
}
