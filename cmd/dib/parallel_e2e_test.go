package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// writeParallelElements writes the test elements into DIR/elements: fails
// (root.d exits 1 before anything else there) and slow (root.d sleeps far
// longer than the test runs). Both act first in the build's first phase,
// so an image made of them costs its bootstrap's restore and no more.
func writeParallelElements(dir string) (string, error) {
	els := filepath.Join(dir, "elements")
	for name, script := range map[string]string{
		"fails": "#!/bin/bash\necho this element fails on purpose >&2\nexit 1\n",
		"slow":  "#!/bin/bash\nsleep 3017\n",
	} {
		d := filepath.Join(els, name, "root.d")
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(d, "01-"+name), []byte(script), 0o755); err != nil {
			return "", err
		}
	}
	return els, nil
}

// parallelDibfile is a multi-image Dibfile: before the images given as
// NAME[:ELEMENT] (minbase trees written as tars, the test elements on
// their elements-path), the image of examples/debian-tarball.yaml as it is
// there (its steps have the IDs of the example's; an elements-path would
// change them) when withExample. All share the example's bootstrap.
func parallelDibfile(dir, name, elements string, withExample bool, images ...string) (string, error) {
	var b strings.Builder
	b.WriteString("images:\n")
	if withExample {
		src, err := os.ReadFile(tarballExample)
		if err != nil {
			return "", err
		}
		first := true
		for _, l := range strings.Split(strings.TrimSpace(string(src)), "\n") {
			if strings.HasPrefix(l, "#") {
				continue
			}
			if first {
				b.WriteString("  - " + l + "\n")
				first = false
			} else {
				b.WriteString("    " + l + "\n")
			}
		}
	}
	for _, im := range images {
		n, el, _ := strings.Cut(im, ":")
		b.WriteString("  - name: " + n + "\n    distro: debian-minimal\n    release: bookworm\n    arch: amd64\n    outputs: [tar]\n    elements-path: [" + elements + "]\n")
		if el != "" {
			b.WriteString("    elements: [" + el + "]\n")
		}
	}
	path := filepath.Join(dir, name)
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}

const tarballExample = "../../examples/debian-tarball.yaml"

// sharedBuild is a build made once per test binary for several tests.
type sharedBuild struct {
	once sync.Once
	// dir holds the build cache, the output and work directories and the
	// test elements (els).
	dir, cache, out, work, els string
	code                       int
	stdout, stderr             string
}

// tarballBuild is the cold build of the tarball example's image, shared by
// TestDebianTarballEndToEnd and TestParallelImagesEndToEnd: one `dib apply
// -j 2 --json` of the example's image beside pbad, an image that fails in
// its first phase, with one empty build cache. It costs the example's
// build and pbad's restore of the bootstrap.
var tarballBuild sharedBuild

// sharedTarballBuild makes tarballBuild once; its directory is removed
// when the test binary ends.
func sharedTarballBuild(t *testing.T) *sharedBuild {
	t.Helper()
	b := &tarballBuild
	b.once.Do(func() {
		var err error
		if b.dir, err = os.MkdirTemp("", "dib-e2e-tarball-"); err != nil {
			b.code, b.stderr = -1, err.Error()
			return
		}
		cleanups = append(cleanups, func() { os.RemoveAll(b.dir) })
		b.cache, b.out, b.work = filepath.Join(b.dir, "cache"), filepath.Join(b.dir, "out"), filepath.Join(b.dir, "work")
		var dibfile string
		if err = os.MkdirAll(b.work, 0o755); err == nil {
			if b.els, err = writeParallelElements(b.dir); err == nil {
				dibfile, err = parallelDibfile(b.dir, "Dibfile", b.els, true, "pbad:fails")
			}
		}
		if err != nil {
			b.code, b.stderr = -1, err.Error()
			return
		}
		// A cold build, not one from an earlier run.
		b.code, b.stdout, b.stderr = runDib(t, "apply", "--install-host-tools", "--json", "--no-color", "-j", "2",
			"--cache-dir", b.cache, "-O", b.out, "--work-dir", b.work, dibfile)
	})
	if b.code == -1 || b.code != exitFailed && b.code != exitOK {
		t.Fatalf("the shared build of the tarball example: exit %d\n%s", b.code, b.stderr)
	}
	return b
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

// TestParallelImagesEndToEnd: the shared cold build (sharedTarballBuild)
// built the tarball example's image and pbad two at a time with one cold
// cache: the bootstrap they share ran once (the other build waited for it
// and restored it, as the events say), pbad failed in root.d while the
// example's image finished, and the summary and exit code say so. Then
// --fail-fast on the warm cache: one image fails, the running one is
// stopped and cleaned up, the third never starts.
func TestParallelImagesEndToEnd(t *testing.T) {
	requireE2E(t)
	b := sharedTarballBuild(t)
	if b.code != exitFailed {
		t.Fatalf("exit %d, want %d (one image fails)\n%s", b.code, exitFailed, b.stderr)
	}
	if i := strings.Index(b.stderr, "IMAGE"); i >= 0 {
		t.Logf("the shared build:\n%s", b.stderr[i:])
	}
	bootRuns, bootCached, waits := 0, map[string]bool{}, 0
	ended := map[string]string{}
	for _, e := range parallelEvents(t, b.stdout) {
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
	if bootRuns != 1 || len(bootCached) != 1 || waits == 0 {
		t.Errorf("the shared bootstrap ran %d times, was taken from the cache by %v, %d waits; want once, by the other", bootRuns, bootCached, waits)
	}
	if ended["debian-rootfs"] != "build-finished" || ended["pbad"] != "build-failed" {
		t.Errorf("builds ended %v", ended)
	}
	if _, err := os.Stat(filepath.Join(b.out, "debian-rootfs.tar")); err != nil {
		t.Errorf("output missing: %v", err)
	}
	if _, err := os.Stat(filepath.Join(b.out, "pbad.tar")); err == nil {
		t.Error("the failed image left an output")
	}
	for _, want := range []string{"IMAGE", "\npbad  ", "failed", "image pbad: 01-fails failed in root.d", "this element fails on purpose"} {
		if !strings.Contains(b.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, b.stderr)
		}
	}
	noLeftovers(t, b.work)

	// --fail-fast, two at a time, on the warm cache: pbad fails while
	// pslow sleeps in root.d; pslow is stopped, pnever never starts.
	out2, dir := t.TempDir(), t.TempDir()
	ff, err := parallelDibfile(dir, "Dibfile.ff", b.els, false, "pslow:slow", "pbad:fails", "pnever")
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runDib(t, "apply", "--json", "--no-color", "-j", "2", "--fail-fast", "--cache-dir", b.cache, "-O", out2, "--work-dir", b.work, ff)
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
	noLeftovers(t, b.work)
}

// TestParallelDibfileSharesTheExample checks what sharedTarballBuild
// relies on, without building: the image of the tarball example has the
// same steps in the multi-image Dibfile as in the example (so the
// README's command finds them cached), and pbad's bootstrap is the
// example's (so the two builds share it).
func TestParallelDibfileSharesTheExample(t *testing.T) {
	dir := t.TempDir()
	els, err := writeParallelElements(dir)
	if err != nil {
		t.Fatal(err)
	}
	dibfile, err := parallelDibfile(dir, "Dibfile", els, true, "pbad:fails")
	if err != nil {
		t.Fatal(err)
	}
	steps := func(args ...string) []string {
		t.Helper()
		code, out, errs := runDib(t, append([]string{"plan", "--json"}, args...)...)
		if code != 0 {
			t.Fatalf("dib plan %s: exit %d\n%s", strings.Join(args, " "), code, errs)
		}
		var p struct{ Steps []struct{ ID, Title string } }
		if err := json.Unmarshal([]byte(out), &p); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, s := range p.Steps {
			ids = append(ids, s.Title+" "+s.ID)
		}
		return ids
	}
	example := steps(tarballExample)
	if got := steps("--image", "debian-rootfs", dibfile); strings.Join(got, "\n") != strings.Join(example, "\n") {
		t.Errorf("the example's image in the multi-image Dibfile:\n%s\nin the example:\n%s", strings.Join(got, "\n"), strings.Join(example, "\n"))
	}
	if got := steps("--image", "pbad", dibfile); got[0] != example[0] {
		t.Errorf("pbad's bootstrap %s, the example's %s", got[0], example[0])
	}
}
