package main

import (
	"encoding/json"
	"fmt"
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

// parallelDibfile is a multi-image Dibfile of the images given as
// NAME[:ELEMENT] (minbase trees written as tars, the test elements on
// their elements-path), put before the images of examples/multi-image.yaml
// as they are there (under its defaults; their steps have the IDs of the
// example's) when withExample. All share the example's bootstrap.
func parallelDibfile(dir, name, elements string, withExample bool, images ...string) (string, error) {
	var b strings.Builder
	for _, im := range images {
		n, el, _ := strings.Cut(im, ":")
		b.WriteString("  - name: " + n + "\n    distro: debian-minimal\n    release: bookworm\n    arch: amd64\n    outputs: [tar]\n    elements-path: [" + elements + "]\n")
		if el != "" {
			b.WriteString("    elements: [" + el + "]\n")
		}
	}
	text := "images:\n" + b.String()
	if withExample {
		src, err := os.ReadFile(multiImageExample)
		if err != nil {
			return "", err
		}
		before, after, ok := strings.Cut(string(src), "\nimages:\n")
		if !ok {
			return "", fmt.Errorf("%s: no line \"images:\"", multiImageExample)
		}
		text = before + "\n" + text + after
	}
	path := filepath.Join(dir, name)
	return path, os.WriteFile(path, []byte(text), 0o644)
}

const (
	tarballExample    = "../../examples/debian-tarball.yaml"
	multiImageExample = "../../examples/multi-image.yaml"
)

// sharedBuild is a build made once per test binary for several tests.
type sharedBuild struct {
	once sync.Once
	// dir holds the build cache, the output and work directories and the
	// test elements (els).
	dir, cache, out, work, els string
	code                       int
	stdout, stderr             string
}

// multiBuild is the cold build of examples/multi-image.yaml's images
// (debian-rootfs, the tarball example's image, and debian-ops), shared by
// TestDebianTarballEndToEnd and TestParallelImagesEndToEnd: one `dib
// apply -j 2 --json` of the example's images after pbad, an image that
// fails in its first phase, with one empty build cache. It costs the
// example's two builds (one bootstrap) and pbad's restore of the
// bootstrap.
var multiBuild sharedBuild

// sharedMultiBuild makes multiBuild once; its directory is removed when
// the test binary ends.
func sharedMultiBuild(t *testing.T) *sharedBuild {
	t.Helper()
	b := &multiBuild
	b.once.Do(func() {
		var err error
		if b.dir, err = os.MkdirTemp("", "dib-e2e-multi-"); err != nil {
			b.code, b.stderr = -1, err.Error()
			return
		}
		afterAll(b.dir)
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
		t.Fatalf("the shared build of examples/multi-image.yaml: exit %d\n%s", b.code, b.stderr)
	}
	return b
}

type parallelEvent struct {
	Type, Image, Kind, Holder string
	Step                      string `json:"step_id"`
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

// TestParallelImagesEndToEnd: the shared cold build (sharedMultiBuild)
// built examples/multi-image.yaml's images and pbad at once (-j 2: two
// steps at a time) with one cold cache: the bootstrap they share ran once (the other builds
// waited for it and restored it, as the events say), pbad failed in root.d
// while the example's images finished, and the summary and exit code say
// so. Then `dib apply -j 2 examples/multi-image.yaml` itself on that cache
// runs nothing and writes the same images. Then --fail-fast on the warm
// cache: one image fails, the running ones are stopped and cleaned up;
// with -j 1 the next one never starts.
func TestParallelImagesEndToEnd(t *testing.T) {
	requireE2E(t)
	b := sharedMultiBuild(t)
	if b.code != exitFailed {
		t.Fatalf("exit %d, want %d (one image fails)\n%s", b.code, exitFailed, b.stderr)
	}
	if i := strings.Index(b.stderr, "IMAGE"); i >= 0 {
		t.Logf("the shared build:\n%s", b.stderr[i:])
	}
	var bootRan, endOrder []string
	bootStep, bootCached, waits := "", map[string]bool{}, map[string]string{}
	ended := map[string]string{}
	evs := parallelEvents(t, b.stdout)
	for _, e := range evs {
		if e.Type == "build-finished" || e.Type == "build-failed" {
			endOrder = append(endOrder, e.Image)
		}
		switch {
		case e.Type == "step-started" && e.Kind == "bootstrap":
			bootRan, bootStep = append(bootRan, e.Image), e.Step
		case e.Type == "step-cached" && e.Kind == "bootstrap":
			bootCached[e.Image] = true
		case e.Type == "build-finished" || e.Type == "build-failed":
			ended[e.Image] = e.Type
		}
	}
	for _, e := range evs {
		if e.Type == "step-waiting" && e.Step == bootStep {
			waits[e.Image] = e.Holder
		}
	}
	// Three images, one bootstrap: run by one, waited for (the first
	// two start together) and restored by the two others.
	if len(bootRan) != 1 || len(bootCached) != 2 || bootCached[bootRan[0]] || len(waits) == 0 {
		t.Errorf("the shared bootstrap was run by %v, taken from the cache by %v, waited for by %v (image: holder); want one image, the two others, at least one", bootRan, bootCached, waits)
	}
	for im, holder := range waits {
		if len(bootRan) == 1 && holder != bootRan[0] || im == holder {
			t.Errorf("%s waited for the bootstrap held by %q, which %v ran", im, holder, bootRan)
		}
	}
	if ended["debian-rootfs"] != "build-finished" || ended["debian-ops"] != "build-finished" || ended["pbad"] != "build-failed" {
		t.Errorf("builds ended %v", ended)
	}
	// pbad failed first, in its first phase, while the example's images
	// were building: they went on and finished.
	if len(endOrder) != 3 || endOrder[0] != "pbad" {
		t.Errorf("builds ended in the order %v, want pbad's failure first", endOrder)
	}
	for _, f := range []string{"debian-rootfs.tar", "debian-rootfs.docker.tar", "debian-ops.tar"} {
		if _, err := os.Stat(filepath.Join(b.out, f)); err != nil {
			t.Errorf("output missing: %v", err)
		}
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

	// The example as the fleet docs say (dib apply -j 2 FILE), on the
	// warm cache: its images are the ones built above, step for step, so
	// nothing runs and the outputs are the cold build's.
	out := t.TempDir()
	code, stdout, stderr := runDib(t, "apply", "--json", "--no-color", "-j", "2", "--cache-dir", b.cache, "-O", out, "--work-dir", b.work, multiImageExample)
	if ran := stepsRun(t, stdout); code != exitOK || len(ran) != 0 {
		t.Fatalf("dib apply %s on the warm cache: exit %d, ran %q\n%s", multiImageExample, code, ran, stderr)
	}
	for _, f := range []string{"debian-rootfs.tar", "debian-ops.tar"} {
		if got, want := sha256File(t, filepath.Join(out, f)), sha256File(t, filepath.Join(b.out, f)); got != want {
			t.Errorf("%s restored from the cache differs from the cold build's", f)
		}
	}
	noLeftovers(t, b.work)

	// --fail-fast, -j 2 (three images in progress, two steps at a time)
	// on the warm cache: pbad fails while pslow sleeps in root.d and
	// pother builds; both are stopped and cleaned up.
	out2, dir := t.TempDir(), t.TempDir()
	ff, err := parallelDibfile(dir, "Dibfile.ff", b.els, false, "pslow:slow", "pbad:fails", "pother")
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runDib(t, "apply", "--json", "--no-color", "-j", "2", "--fail-fast", "--cache-dir", b.cache, "-O", out2, "--work-dir", b.work, ff)
	if code != exitFailed {
		t.Fatalf("--fail-fast: exit %d\n%s", code, stderr)
	}
	started := map[string]bool{}
	for _, e := range parallelEvents(t, stdout) {
		if e.Type == "build-started" {
			started[e.Image] = true
		}
	}
	if !started["pslow"] || !started["pbad"] || !started["pother"] {
		t.Errorf("--fail-fast: started %v, want all three", started)
	}
	for _, want := range []string{"pslow   cancelled", "pbad    failed", "pother  cancelled"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("--fail-fast summary lacks %q:\n%s", want, stderr)
		}
	}
	ents, _ := os.ReadDir(out2)
	for _, e := range ents {
		if e.Name() != "pslow.log" && e.Name() != "pbad.log" && e.Name() != "pother.log" && e.Name() != ".dib" {
			t.Errorf("--fail-fast left %s in the output directory", e.Name())
		}
	}
	noLeftovers(t, b.work)

	// -j 1 --fail-fast: one image after another; after pbad fails the
	// next never starts.
	out3 := t.TempDir()
	ff1, err := parallelDibfile(dir, "Dibfile.ff1", b.els, false, "pbad:fails", "pnever")
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runDib(t, "apply", "--json", "--no-color", "-j", "1", "--fail-fast", "--cache-dir", b.cache, "-O", out3, "--work-dir", b.work, ff1)
	if code != exitFailed {
		t.Fatalf("-j 1 --fail-fast: exit %d\n%s", code, stderr)
	}
	for _, e := range parallelEvents(t, stdout) {
		if e.Type == "build-started" && e.Image == "pnever" {
			t.Error("-j 1 --fail-fast: pnever started after pbad failed")
		}
	}
	for _, want := range []string{"pbad    failed", "pnever  not started"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("-j 1 --fail-fast summary lacks %q:\n%s", want, stderr)
		}
	}
	noLeftovers(t, b.work)
}

// TestParallelDibfileSharesTheExample checks what sharedMultiBuild
// relies on, without building: the images of examples/multi-image.yaml
// have the same steps in the generated Dibfile as in the example (so
// `dib apply examples/multi-image.yaml` finds them cached), debian-rootfs
// has the tarball example's steps (so the README's command finds them
// cached too), and every image's bootstrap is the same (so the builds
// share it).
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
	tarball := steps(tarballExample)
	for _, im := range []string{"debian-rootfs", "debian-ops"} {
		example := steps("--image", im, multiImageExample)
		if got := steps("--image", im, dibfile); strings.Join(got, "\n") != strings.Join(example, "\n") {
			t.Errorf("image %s in the generated Dibfile:\n%s\nin the example:\n%s", im, strings.Join(got, "\n"), strings.Join(example, "\n"))
		}
		if im == "debian-rootfs" && strings.Join(example, "\n") != strings.Join(tarball, "\n") {
			t.Errorf("image debian-rootfs of the multi-image example:\n%s\nthe tarball example:\n%s", strings.Join(example, "\n"), strings.Join(tarball, "\n"))
		}
		if example[0] != tarball[0] {
			t.Errorf("image %s's bootstrap %s, the tarball example's %s", im, example[0], tarball[0])
		}
	}
	if got := steps("--image", "pbad", dibfile); got[0] != tarball[0] {
		t.Errorf("pbad's bootstrap %s, the example's %s", got[0], tarball[0])
	}
}
