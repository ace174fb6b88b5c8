package runtime

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/runtime/cache"
)

// cachePlan is hostPlan with three phases, sealed (real step IDs), with
// snapshot points after the bootstrap, after root.d and after the
// manifests (the last state step), as the compiler marks a tree build.
func cachePlan(t *testing.T, scripts map[string]string, outputs ...string) *plan.Plan {
	t.Helper()
	all := map[string]string{
		"root.d/10-make":       rootD,
		"post-root.d/10-post":  "#!/bin/sh\necho post >> \"$TARGET_ROOT/etc/post\"\n",
		"finalise.d/10-final":  "#!/bin/sh\necho final > \"$TARGET_ROOT/etc/final\"\n",
		"finalise.d/20-secret": "#!/bin/sh\necho \"$DIB_PASSWORD\" | sha256sum > \"$TARGET_ROOT/etc/pwsum\"\n",
	}
	for k, v := range scripts {
		all[k] = v
	}
	return cachePlanOf(t, all, []string{"root.d/10-make", "post-root.d/10-post", "finalise.d/10-final", "finalise.d/20-secret"}, outputs...)
}

// cachePlanOf is cachePlan with the given scripts in the given order; a
// phase step's SnapshotAfter is the scripts whose content starts with
// "#!/bin/sh\n# point\n".
func cachePlanOf(t *testing.T, all map[string]string, order []string, outputs ...string) *plan.Plan {
	t.Helper()
	p := hostPlan(all, order)
	if slices.ContainsFunc(outputs, func(f string) bool { return f == "raw" || f == "vhd" || f == "qcow2" }) {
		// A disk build: the disk is assembled before the manifests (fakeDisk).
		at := slices.IndexFunc(p.Steps, func(s plan.Step) bool { return s.ID == "s-man" })
		p.Steps = slices.Insert(p.Steps, at, plan.Step{ID: "s-disk", Kind: plan.KindPartition, Title: "partition disk", Partition: &plan.Partition{}})
	}
	sums := map[string]string{}
	for _, f := range p.Files {
		sums[f.Path] = f.SHA256
	}
	for i := range p.Steps {
		s := &p.Steps[i]
		if s.Phase != nil {
			for j := range s.Phase.Scripts { // as the compiler fills them
				s.Phase.Scripts[j].SHA256 = sums[s.Phase.Scripts[j].Path]
			}
		}
		if i > 0 {
			s.Deps = []string{p.Steps[i-1].ID}
		}
		switch s.ID {
		case "s-boot", "s-root.d", "s-man":
			s.Snapshot = true
		}
		if s.Phase != nil {
			for _, sc := range s.Phase.Scripts {
				if strings.HasPrefix(all[sc.Path], "#!/bin/sh\n# point\n") {
					s.SnapshotAfter = append(s.SnapshotAfter, sc.Name)
					s.Snapshot = true
				}
			}
		}
		s.Mirror = s.ID == "s-boot" // as if the bootstrap talked to a mirror
		if s.Kind == plan.KindPhase && s.Phase.Name == "finalise.d" {
			s.Env = []string{"DIB_PASSWORD"}
		}
	}
	if len(outputs) > 0 {
		// Replace the outputs: each with its checksum.
		var steps []plan.Step
		for _, s := range p.Steps {
			if cache.IsState(&s) {
				steps = append(steps, s)
			}
		}
		p.Outputs = nil
		last := steps[len(steps)-1].ID
		for _, f := range outputs {
			o := plan.Output{Format: f, Path: "img." + f, Checksums: []string{"sha256"}}
			p.Outputs = append(p.Outputs, o)
			steps = append(steps,
				plan.Step{ID: "s-out-" + f, Kind: plan.KindOutput, Title: "output " + f, Deps: []string{last}, Output: &o},
				plan.Step{ID: "s-sum-" + f, Kind: plan.KindChecksum, Title: "checksum img." + f, Deps: []string{"s-out-" + f},
					Checksum: &plan.Checksum{Path: o.Path, Algorithms: []string{"sha256"}}})
		}
		p.Steps = steps
	}
	if err := p.Seal(); err != nil {
		t.Fatal(err)
	}
	return p
}

// run applies p with the cache at dir and returns the titles of the steps
// that ran, and of those that were cached.
type cacheRun struct {
	ran, cached []string
	events      []Event
	err         error
}

func applyCached(t *testing.T, p *plan.Plan, cacheDir, outDir string, mod func(*Options)) cacheRun {
	t.Helper()
	var r cacheRun
	var mu sync.Mutex
	o := Options{OutputDir: outDir, WorkDir: t.TempDir(), NoTmpfs: true, CacheDir: cacheDir,
		Secrets: map[string]string{"DIB_PASSWORD": "hunter2"}, Getenv: func(string) string { return "" },
		Observer: ObserverFunc(func(e Event) {
			mu.Lock()
			defer mu.Unlock()
			r.events = append(r.events, e)
			switch e.Type {
			case StepStarted:
				r.ran = append(r.ran, e.Title)
			case StepCached:
				r.cached = append(r.cached, e.Title)
			}
		})}
	if mod != nil {
		mod(&o)
	}
	r.err = Apply(context.Background(), p, o)
	return r
}

func fileSum(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

var allSteps = []string{"bootstrap", "write hook tree", "phase root.d", "phase post-root.d", "phase finalise.d", "write manifests", "output tar", "checksum"}

// TestNoOpRestoreInLedger: a build whose steps are all cached restores
// its outputs before it sets anything else up; the staging directories
// of that restore are in its ledger already, so a kill during it is
// reclaimed (dib clean, the next apply).
func TestNoOpRestoreInLedger(t *testing.T) {
	requireGNUTar(t)
	cacheDir, outDir := t.TempDir(), t.TempDir()
	p := cachePlan(t, nil)
	if r := applyCached(t, p, cacheDir, outDir, nil); r.err != nil {
		t.Fatal(r.err)
	}
	os.Remove(filepath.Join(outDir, "img.tar"))
	var ledgers []string
	r := applyCached(t, p, cacheDir, outDir, func(o *Options) {
		inner := o.Observer
		o.Observer = ObserverFunc(func(e Event) {
			if e.Type == StepCached && ledgers == nil {
				files, _ := filepath.Glob(filepath.Join(StateDir(outDir), "ledger", "*.jsonl"))
				for _, f := range files {
					b, _ := os.ReadFile(f)
					ledgers = append(ledgers, string(b))
				}
			}
			inner.Event(e)
		})
	})
	if r.err != nil || len(r.ran) != 0 {
		t.Fatalf("no-op rebuild: err %v, ran %q", r.err, r.ran)
	}
	if len(ledgers) != 1 || !strings.Contains(ledgers[0], `"pattern":".dib-restore-*"`) {
		t.Errorf("the ledger during the restore, want the staging directories' pattern in it:\n%s", strings.Join(ledgers, "\n--\n"))
	}
}

func TestCacheNoOpAndOutputs(t *testing.T) {
	requireGNUTar(t)
	cacheDir, outDir := t.TempDir(), t.TempDir()
	p := cachePlan(t, nil)
	r := applyCached(t, p, cacheDir, outDir, nil)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !reflect.DeepEqual(r.ran, allSteps) || len(r.cached) != 0 {
		t.Fatalf("cold build ran %q, cached %q", r.ran, r.cached)
	}
	tarSum := fileSum(t, filepath.Join(outDir, "img.tar"))
	checkPayloads(t, cacheDir)

	// Nothing changed: nothing runs, the outputs stay.
	r = applyCached(t, p, cacheDir, outDir, nil)
	if r.err != nil || len(r.ran) != 0 || !reflect.DeepEqual(r.cached, allSteps) {
		t.Fatalf("no-op rebuild: err %v, ran %q, cached %q", r.err, r.ran, r.cached)
	}
	// Outputs removed or edited are restored from the cache.
	os.Remove(filepath.Join(outDir, "img.tar"))
	os.WriteFile(filepath.Join(outDir, "img.tar.sha256"), []byte("edited"), 0o644)
	os.RemoveAll(filepath.Join(outDir, "img.d"))
	// Another image of the same apply (one output directory) restoring
	// its outputs: its staging directory is left alone.
	other := filepath.Join(outDir, ".dib-restore-other", "debian-ops.tar")
	os.MkdirAll(filepath.Dir(other), 0o755)
	os.WriteFile(other, []byte("half"), 0o644)
	r = applyCached(t, p, cacheDir, outDir, nil)
	if r.err != nil || len(r.ran) != 0 {
		t.Fatalf("restore: err %v, ran %q", r.err, r.ran)
	}
	if got := fileSum(t, filepath.Join(outDir, "img.tar")); got != tarSum {
		t.Errorf("restored tar differs")
	}
	if b, _ := os.ReadFile(filepath.Join(outDir, "img.tar.sha256")); !strings.HasPrefix(string(b), tarSum) {
		t.Errorf("checksum file %q", b)
	}
	if _, err := os.Stat(filepath.Join(outDir, "img.d/dib_plan_id")); err != nil {
		t.Errorf("manifests not restored: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(outDir, ".dib-restore-*")); len(left) != 1 {
		t.Errorf("staging directories %v, want only the other image's", left)
	}
	if b, _ := os.ReadFile(other); string(b) != "half" {
		t.Errorf("the other image's staged output was removed by this restore: %q", b)
	}
	os.RemoveAll(filepath.Dir(other))

	// A new output: only it (and its checksum) runs, from the final
	// snapshot, whose own outputs (the manifests) are restored too.
	os.RemoveAll(filepath.Join(outDir, "img.d"))
	p2 := cachePlan(t, nil, "tar", "tgz")
	r = applyCached(t, p2, cacheDir, outDir, nil)
	if r.err != nil || !reflect.DeepEqual(r.ran, []string{"output tgz", "checksum img.tgz"}) {
		t.Fatalf("outputs-only: err %v, ran %q, cached %q", r.err, r.ran, r.cached)
	}
	if _, err := os.Stat(filepath.Join(outDir, "img.d/dib_plan_id")); err != nil {
		t.Errorf("manifests not restored with the final state: %v", err)
	}

	// --no-cache runs everything.
	r = applyCached(t, p, cacheDir, outDir, func(o *Options) { o.NoCache = true })
	if r.err != nil || !reflect.DeepEqual(r.ran, allSteps) {
		t.Fatalf("--no-cache ran %q (%v)", r.ran, r.err)
	}
}

// checkPayloads checks that the cache's entries keep their archives
// uncompressed (cache.TreeArchive, HooksArchive, OutputsArchive): zstd
// was two thirds of a snapshot's time (runtime/cache/snapshot.go); the
// tar output's entry keeps the archive itself (cache.OutputPayload).
func checkPayloads(t *testing.T, cacheDir string) {
	t.Helper()
	_, list := cacheEntries(t, cacheDir)
	snaps, outs := 0, 0
	for _, m := range list {
		var names []string
		for _, f := range m.Files {
			names = append(names, f.Name)
		}
		if m.Snapshot != nil {
			snaps++
			if !slices.Contains(names, cache.TreeArchive) || !slices.Contains(names, cache.HooksArchive) {
				t.Errorf("snapshot %q holds %q, want %s and %s", m.Title, names, cache.TreeArchive, cache.HooksArchive)
			}
		}
		if len(m.Outputs) > 0 {
			outs++
			switch {
			case m.Title == "output tar":
				// The archive as tar wrote it, copied as it was written.
				if !slices.Contains(names, cache.OutputPayload) {
					t.Errorf("the tar output's entry holds %q, want %s", names, cache.OutputPayload)
				}
			case m.Archive("outputs") != cache.OutputsArchive:
				t.Errorf("outputs of %q are in %q, want %s", m.Title, names, cache.OutputsArchive)
			}
		}
	}
	if snaps == 0 || outs == 0 {
		t.Errorf("%d snapshots and %d output entries, want some of each", snaps, outs)
	}
}

func TestCacheInvalidation(t *testing.T) {
	requireGNUTar(t)
	cacheDir, outDir := t.TempDir(), t.TempDir()
	if r := applyCached(t, cachePlan(t, nil), cacheDir, outDir, nil); r.err != nil {
		t.Fatal(r.err)
	}
	for _, tc := range []struct {
		name    string
		scripts map[string]string
		mod     func(*Options)
		ran     []string
	}{
		{"post-root.d script edited", map[string]string{"post-root.d/10-post": "#!/bin/sh\necho edited > \"$TARGET_ROOT/etc/post\"\n"}, nil,
			allSteps[3:]},
		{"root.d script edited", map[string]string{"root.d/10-make": rootD + "\n# edited\n"}, nil, allSteps[1:]},
		{"secret changed", nil, func(o *Options) { o.Secrets = map[string]string{"DIB_PASSWORD": "other"} }, allSteps[3:]},
		{"mirror result too old", nil, func(o *Options) { o.CacheMaxAge = time.Nanosecond }, allSteps},
		{"--refresh", nil, func(o *Options) { o.Refresh = true }, allSteps},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := cachePlan(t, tc.scripts)
			r := applyCached(t, p, cacheDir, t.TempDir(), tc.mod)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if !reflect.DeepEqual(r.ran, tc.ran) {
				t.Errorf("ran %q, want %q", r.ran, tc.ran)
			}
		})
	}
}

func TestCacheResumeAfterFailure(t *testing.T) {
	requireGNUTar(t)
	cacheDir, outDir := t.TempDir(), t.TempDir()
	bad := cachePlan(t, map[string]string{"post-root.d/10-post": "#!/bin/sh\necho broken\nexit 1\n"})
	r := applyCached(t, bad, cacheDir, outDir, nil)
	var se *StepError
	if !errors.As(r.err, &se) || se.Title != "phase post-root.d" {
		t.Fatalf("want post-root.d to fail, got %v", r.err)
	}
	// Fixed: the build restarts after root.d, the last snapshot before it.
	r = applyCached(t, cachePlan(t, nil), cacheDir, outDir, nil)
	if r.err != nil || !reflect.DeepEqual(r.ran, allSteps[3:]) || !reflect.DeepEqual(r.cached, allSteps[:3]) {
		t.Fatalf("resume: err %v, ran %q, cached %q", r.err, r.ran, r.cached)
	}
}

func TestCacheCorruptEntryRebuilt(t *testing.T) {
	requireGNUTar(t)
	cacheDir, outDir := t.TempDir(), t.TempDir()
	p := cachePlan(t, nil)
	if r := applyCached(t, p, cacheDir, outDir, nil); r.err != nil {
		t.Fatal(r.err)
	}
	c, list := cacheEntries(t, cacheDir)
	var snap *cache.Meta
	for _, m := range list {
		if m.Title == "write manifests" {
			snap = m
		}
	}
	if snap == nil || snap.Snapshot == nil {
		t.Fatal("no snapshot of the final state")
	}
	// Flip a byte of the final snapshot; change finalise.d's secret so the
	// outputs must be rebuilt from... no: change an output instead.
	f, err := os.OpenFile(c.Path(snap.Key, snap.Archive("tree")), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xff, 0xee}, 100)
	f.Close()
	// A new output needs the final state: the corrupt snapshot is dropped,
	// the one after root.d is restored, and the rest runs.
	r := applyCached(t, cachePlan(t, nil, "tar", "tgz"), cacheDir, outDir, nil)
	if r.err != nil {
		t.Fatal(r.err)
	}
	var corrupt []string
	for _, e := range r.events {
		if e.Type == CacheCorrupt {
			corrupt = append(corrupt, e.Error)
		}
	}
	if len(corrupt) != 1 || !strings.Contains(corrupt[0], "corrupt") {
		t.Errorf("corrupt events %q", corrupt)
	}
	if !reflect.DeepEqual(r.cached, []string{"bootstrap", "write hook tree", "phase root.d", "output tar", "checksum img.tar"}) {
		t.Errorf("cached %q, ran %q", r.cached, r.ran)
	}
	if m, _ := c.Get(snap.Key); m == nil || m.Snapshot == nil {
		t.Error("the corrupt entry was not rebuilt")
	} else if err := c.Verify(m); err != nil {
		t.Error(err)
	}
}

// TestCacheConcurrentApplies: applies share the cache's lock, so two
// builds (two processes, no Flights) use one cache at once: the post-root.d
// script of each waits until the other's runs too, which never happens if
// one waits for the other. Both succeed and every entry is whole.
func TestCacheConcurrentApplies(t *testing.T) {
	requireGNUTar(t)
	cacheDir, meet := t.TempDir(), t.TempDir()
	rendezvous := "#!/bin/sh\ntouch " + meet + "/$$\nfor i in $(seq 200); do [ $(ls " + meet + " | wc -l) -ge 2 ] && exit 0; sleep 0.1; done\necho the other build never ran >&2; exit 1\n"
	p := cachePlan(t, map[string]string{"post-root.d/10-post": rendezvous})
	res := concurrentApplies(t, p, cacheDir, nil)
	for _, r := range res {
		if r.err != nil {
			t.Fatal(r.err)
		}
		if !slices.Contains(r.ran, "phase post-root.d") {
			t.Errorf("ran %q", r.ran)
		}
		for _, e := range r.events {
			if e.Type == CacheWait {
				t.Errorf("an apply waited for the cache's lock: %s", e.Title)
			}
		}
	}
	c, list := cacheEntries(t, cacheDir)
	for _, m := range list {
		if err := c.Verify(m); err != nil {
			t.Error(err)
		}
	}
	if len(list) != len(allSteps) {
		t.Errorf("%d entries for %d steps", len(list), len(allSteps))
	}
}

// TestSharedStepsRunOnce: two builds of one process sharing Flights run
// each step they share once: the other build waits for the entry and
// takes it from the cache (events step-waiting, then step-cached).
func TestSharedStepsRunOnce(t *testing.T) {
	requireGNUTar(t)
	p := cachePlan(t, map[string]string{"post-root.d/10-post": "#!/bin/sh\nsleep 1\n"})
	var fl cache.Flights
	res := concurrentApplies(t, p, t.TempDir(), func(o *Options) { o.Flights = &fl })
	starts := map[string]int{}
	waited := 0
	for _, r := range res {
		if r.err != nil {
			t.Fatal(r.err)
		}
		for _, e := range r.events {
			switch e.Type {
			case StepStarted:
				starts[e.Step]++
			case StepWaiting:
				waited++
			}
			if e.Image != p.Image.Name {
				t.Errorf("event %s names image %q", e.Type, e.Image)
			}
		}
		if len(r.ran)+len(r.cached) < len(allSteps) {
			t.Errorf("ran %q, cached %q: steps missing", r.ran, r.cached)
		}
	}
	for _, s := range p.Steps {
		if starts[s.ID] != 1 {
			t.Errorf("step %q ran %d times", s.Title, starts[s.ID])
		}
	}
	if waited == 0 {
		t.Error("no build waited for the other")
	}
}

// concurrentApplies applies p twice at once with one cache, into two
// output directories.
func concurrentApplies(t *testing.T, p *plan.Plan, cacheDir string, mod func(*Options)) []cacheRun {
	var wg sync.WaitGroup
	res := make([]cacheRun, 2)
	for i := range res {
		out := t.TempDir()
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = applyCached(t, p, cacheDir, out, mod)
		}()
	}
	wg.Wait()
	return res
}

// TestReproducibleTar builds the same plan twice from nothing, a second
// apart, and once more from the cache's snapshot (a changed checksum list
// makes the tar step run again on the restored tree): the three tars are
// the same bytes.
func TestReproducibleTar(t *testing.T) {
	requireGNUTar(t)
	det := map[string]string{"root.d/10-make": "#!/bin/sh\nset -e\nmkdir -p \"$TARGET_ROOT/etc\" \"$TARGET_ROOT/tmp\" \"$TARGET_ROOT/var/log\"\necho built > \"$TARGET_ROOT/etc/marker\"\nln -s marker \"$TARGET_ROOT/etc/link\"\n"}
	cacheDir := t.TempDir()
	p := cachePlan(t, det)
	out1 := t.TempDir()
	if r := applyCached(t, p, cacheDir, out1, nil); r.err != nil {
		t.Fatal(r.err)
	}
	cold := fileSum(t, filepath.Join(out1, "img.tar"))
	time.Sleep(1100 * time.Millisecond) // every file of the next build is a second newer
	out2 := t.TempDir()
	if r := applyCached(t, p, t.TempDir(), out2, nil); r.err != nil {
		t.Fatal(r.err)
	}
	if again := fileSum(t, filepath.Join(out2, "img.tar")); again != cold {
		t.Errorf("two cold builds give different tars: %s, %s", cold, again)
	}
	// From the snapshot after the manifests: only the tar and its checksum run.
	p2 := cachePlan(t, det)
	for i := range p2.Steps {
		if o := p2.Steps[i].Output; o != nil {
			o.Checksums = []string{"md5", "sha256"}
		}
	}
	if err := p2.Seal(); err != nil {
		t.Fatal(err)
	}
	out3 := t.TempDir()
	r := applyCached(t, p2, cacheDir, out3, nil)
	if r.err != nil || !reflect.DeepEqual(r.ran, []string{"output tar", "checksum"}) {
		t.Fatalf("restore: err %v, ran %q", r.err, r.ran)
	}
	if restored := fileSum(t, filepath.Join(out3, "img.tar")); restored != cold {
		t.Errorf("the tar from the cache's snapshot differs from the cold build's")
	}
}

// TestTarEpochFromPackages: with the default SOURCE_DATE_EPOCH (from the
// packages: the newest dpkg md5sums file), a package's file keeps its
// time in the tar, what the build wrote gets the newest package's date,
// and the tar made again from the cache's snapshot is the same bytes.
func TestTarEpochFromPackages(t *testing.T) {
	requireGNUTar(t)
	det := map[string]string{"root.d/10-make": "#!/bin/sh\nset -e\ncd \"$TARGET_ROOT\"\nmkdir -p var/lib/dpkg/info usr/bin etc tmp var/log\n" +
		"touch -d @1700000000 var/lib/dpkg/info/base-files.md5sums\n" +
		"touch -d @1690000000 var/lib/dpkg/info/zlib1g.md5sums usr/bin/tool\n" +
		"echo built > etc/marker\n"}
	fromPackages := func(p *plan.Plan) *plan.Plan {
		for i := range p.Steps {
			if o := p.Steps[i].Output; o != nil {
				o.Epoch = plan.Epoch{SourceDateEpochFrom: plan.EpochFromPackages}
			}
		}
		if err := p.Seal(); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cacheDir, out1 := t.TempDir(), t.TempDir()
	if r := applyCached(t, fromPackages(cachePlan(t, det)), cacheDir, out1, nil); r.err != nil {
		t.Fatal(r.err)
	}
	f, err := os.Open(filepath.Join(out1, "img.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	times := map[string]int64{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		times[h.Name] = h.ModTime.Unix()
	}
	for name, want := range map[string]int64{"./usr/bin/tool": 1690000000, "./var/lib/dpkg/info/zlib1g.md5sums": 1690000000,
		"./var/lib/dpkg/info/base-files.md5sums": 1700000000, "./etc/marker": 1700000000, "./etc/post": 1700000000} {
		if times[name] != want {
			t.Errorf("%s: mtime %d, want %d", name, times[name], want)
		}
	}
	p2 := cachePlan(t, det)
	for i := range p2.Steps {
		if o := p2.Steps[i].Output; o != nil {
			o.Checksums = []string{"md5", "sha256"}
		}
	}
	out2 := t.TempDir()
	r := applyCached(t, fromPackages(p2), cacheDir, out2, nil)
	if r.err != nil || !reflect.DeepEqual(r.ran, []string{"output tar", "checksum"}) {
		t.Fatalf("restore: err %v, ran %q", r.err, r.ran)
	}
	if a, b := fileSum(t, filepath.Join(out1, "img.tar")), fileSum(t, filepath.Join(out2, "img.tar")); a != b {
		t.Errorf("the tar from the cache's snapshot differs from the cold build's")
	}
}

// TestCachePointInsidePhase: a phase with a cache point after its first
// script; editing its last script restores the state after the first
// (which does not run again) and runs the rest of the phase, and the
// result is the cold build's. The layers hold a deletion (20-b removes a
// file root.d made) and the restore applies it.
func TestCachePointInsidePhase(t *testing.T) {
	requireGNUTar(t)
	scripts := func(last string) map[string]string {
		return map[string]string{
			"root.d/10-make":      "#!/bin/sh\nset -e\nmkdir -p \"$TARGET_ROOT/etc\" \"$TARGET_ROOT/tmp\" \"$TARGET_ROOT/var/log\"\necho built > \"$TARGET_ROOT/etc/marker\"\n",
			"post-root.d/10-a":    "#!/bin/sh\n# point\necho a >> \"$TARGET_ROOT/etc/a-runs\"\n",
			"post-root.d/20-b":    "#!/bin/sh\nrm \"$TARGET_ROOT/etc/marker\"\necho b > \"$TARGET_ROOT/etc/b\"\n",
			"post-root.d/30-c":    "#!/bin/sh\necho " + last + " > \"$TARGET_ROOT/etc/c\"\n",
			"finalise.d/10-final": "#!/bin/sh\necho final > \"$TARGET_ROOT/etc/final\"\n",
		}
	}
	order := []string{"root.d/10-make", "post-root.d/10-a", "post-root.d/20-b", "post-root.d/30-c", "finalise.d/10-final"}
	cacheDir := t.TempDir()
	if r := applyCached(t, cachePlanOf(t, scripts("one"), order), cacheDir, t.TempDir(), nil); r.err != nil {
		t.Fatal(r.err)
	}
	edited := cachePlanOf(t, scripts("two"), order)
	if got := edited.Steps[3].SnapshotAfter; !reflect.DeepEqual(got, []string{"10-a"}) {
		t.Fatalf("post-root.d's points: %q", got)
	}
	outDir := t.TempDir()
	r := applyCached(t, edited, cacheDir, outDir, nil)
	if r.err != nil {
		t.Fatal(r.err)
	}
	var scriptsRan []string
	for _, e := range r.events {
		if e.Type == ScriptStarted {
			scriptsRan = append(scriptsRan, e.Phase+"/"+e.Script)
		}
	}
	if want := []string{"post-root.d/20-b", "post-root.d/30-c", "finalise.d/10-final"}; !reflect.DeepEqual(scriptsRan, want) {
		t.Errorf("scripts run %q, want %q", scriptsRan, want)
	}
	if want := []string{"bootstrap", "write hook tree", "phase root.d"}; !reflect.DeepEqual(r.cached, want) {
		t.Errorf("cached %q, want %q", r.cached, want)
	}
	// The same plan built cold gives the same tar.
	coldOut := t.TempDir()
	if r := applyCached(t, edited, t.TempDir(), coldOut, nil); r.err != nil {
		t.Fatal(r.err)
	}
	if a, b := fileSum(t, filepath.Join(outDir, "img.tar")), fileSum(t, filepath.Join(coldOut, "img.tar")); a != b {
		t.Errorf("the tar restored from the point differs from the cold build's")
	}
	// And once more: every state is cached, nothing runs but the outputs' restore.
	r = applyCached(t, edited, cacheDir, t.TempDir(), nil)
	if r.err != nil || len(r.ran) != 0 {
		t.Errorf("no-op: err %v, ran %q", r.err, r.ran)
	}
}

// TestCacheRecordsPackages: the entry of a step that talks to a mirror
// records the packages it installed (dpkg status of the tree, new or
// changed versions), inside a phase too; other steps record none.
func TestCacheRecordsPackages(t *testing.T) {
	requireGNUTar(t)
	status := func(pkgs ...string) string {
		var b strings.Builder
		for _, p := range pkgs {
			name, ver, _ := strings.Cut(p, "=")
			b.WriteString("Package: " + name + "\nStatus: install ok installed\nVersion: " + ver + "\n\n")
		}
		return "printf '" + b.String() + "' > \"$TARGET_ROOT/var/lib/dpkg/status\"\n"
	}
	all := map[string]string{
		"root.d/10-make":      "#!/bin/sh\nset -e\nmkdir -p \"$TARGET_ROOT/etc\" \"$TARGET_ROOT/var/lib/dpkg\"\n" + status("apt=2.6.1", "base-files=12.4"),
		"post-root.d/10-pkgs": "#!/bin/sh\n# point\n" + status("apt=2.6.1", "base-files=12.5", "sudo=1.9"),
		"post-root.d/20-more": "#!/bin/sh\n" + status("apt=2.6.1", "base-files=12.5", "sudo=1.9", "vim=9"),
	}
	p := cachePlanOf(t, all, []string{"root.d/10-make", "post-root.d/10-pkgs", "post-root.d/20-more"})
	for i := range p.Steps {
		p.Steps[i].Mirror = p.Steps[i].Phase != nil && p.Steps[i].Phase.Name == "post-root.d"
	}
	cacheDir := t.TempDir()
	if r := applyCached(t, p, cacheDir, t.TempDir(), nil); r.err != nil {
		t.Fatal(r.err)
	}
	_, list := cacheEntries(t, cacheDir)
	got := map[string][]string{}
	for _, m := range list {
		got[m.Title] = m.Packages
		if m.Title == "phase post-root.d" && m.MirrorTime.IsZero() {
			t.Error("the mirror step's entry has no mirror time")
		}
	}
	want := map[string][]string{
		"phase root.d":                        nil,
		"phase post-root.d (through 10-pkgs)": {"base-files=12.5", "sudo=1.9"},
		"phase post-root.d":                   {"base-files=12.5", "sudo=1.9", "vim=9"},
	}
	for title, w := range want {
		if g := got[title]; !reflect.DeepEqual(g, w) {
			t.Errorf("%s: packages %q, want %q", title, g, w)
		}
	}
}

// TestCacheRecordsExpectedDuration: each entry records how long its step
// ran, and a later run of the step announces it as expected: by step ID
// (--no-cache), and by image, kind and title when the step changed (an
// edited script); a step never built has none.
func TestCacheRecordsExpectedDuration(t *testing.T) {
	requireGNUTar(t)
	cacheDir := t.TempDir()
	slow := map[string]string{"post-root.d/10-post": "#!/bin/sh\nsleep 0.4\necho post >> \"$TARGET_ROOT/etc/post\"\n"}
	expected := func(r cacheRun) map[string]time.Duration {
		m := map[string]time.Duration{}
		for _, e := range r.events {
			if e.Type == StepStarted {
				m[e.Title] = e.Expected
			}
		}
		return m
	}
	r := applyCached(t, cachePlan(t, slow), cacheDir, t.TempDir(), nil)
	if r.err != nil {
		t.Fatal(r.err)
	}
	for title, d := range expected(r) {
		if d != 0 {
			t.Errorf("cold build: %s expected %s", title, d)
		}
	}
	_, metas := cacheEntries(t, cacheDir)
	var post *cache.Meta
	for _, m := range metas {
		if m.Title == "phase post-root.d" {
			post = m
		}
	}
	if post == nil || post.Seconds < 0.4 || post.Seconds > 120 {
		t.Fatalf("the post-root.d entry records %v", post)
	}

	r = applyCached(t, cachePlan(t, slow), cacheDir, t.TempDir(), func(o *Options) { o.NoCache = true })
	if got := expected(r)["phase post-root.d"]; r.err != nil || got != time.Duration(post.Seconds*float64(time.Second)) {
		t.Errorf("--no-cache: post-root.d expected %s, want %gs (%v)", got, post.Seconds, r.err)
	}
	edited := map[string]string{"post-root.d/10-post": slow["post-root.d/10-post"] + "# edited\n"}
	r = applyCached(t, cachePlan(t, edited), cacheDir, t.TempDir(), nil)
	got := expected(r)
	if r.err != nil || got["phase post-root.d"] < 400*time.Millisecond {
		t.Errorf("edited script: post-root.d expected %s (%v)", got["phase post-root.d"], r.err)
	}
	if _, ran := got["bootstrap"]; ran {
		t.Errorf("the bootstrap ran again")
	}
}

// fakeDisk stands for the partition step (Options.fakeAssemble): it
// writes a sparse image of the tree's /etc/marker, already finished (no
// filesystem to zero). The outputs are the real disk outputs: raw moves
// the image, vhd is qemu-img's conversion of it.
func fakeDisk(o *Options) {
	o.fakeAssemble = func(b *Build, s *plan.Step) error {
		marker, err := os.ReadFile(filepath.Join(b.Tree(), "etc/marker"))
		if err != nil {
			return err
		}
		raw := filepath.Join(b.Workspace.ImageDir, "img.raw")
		if err := os.MkdirAll(b.Workspace.ImageDir, 0o755); err != nil {
			return err
		}
		f, err := os.Create(raw)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := f.WriteAt(marker, 8<<20); err != nil {
			return err
		}
		b.disk.raw, b.disk.zeroed, b.disk.layout = raw, true, &layout.Layout{}
		return f.Truncate(32 << 20)
	}
}

// TestCacheDiskFinalState: a disk build's final state (the manifests
// step, a point as the compiler marks it) is kept as the finished image:
// adding an output runs only it, on the image restored from the cache,
// and the raw output's entry is the snapshot's payload, linked, not a
// second copy.
func TestCacheDiskFinalState(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
			t.Fatal("qemu-img is required")
		}
		t.Skip("qemu-img not available")
	}
	cacheDir, outDir := t.TempDir(), t.TempDir()
	p := cachePlan(t, nil, "raw")
	r := applyCached(t, p, cacheDir, outDir, fakeDisk)
	if r.err != nil {
		t.Fatal(r.err)
	}
	want := []string{"bootstrap", "write hook tree", "phase root.d", "phase post-root.d", "phase finalise.d", "partition disk", "write manifests", "output raw", "checksum img.raw"}
	if !reflect.DeepEqual(r.ran, want) {
		t.Fatalf("cold build ran %q", r.ran)
	}
	rawSum := fileSum(t, filepath.Join(outDir, "img.raw"))
	// The raw output took the image by rename: its checksum was computed
	// beside the other steps, and is the file's.
	if log, err := os.ReadFile(r.events[0].LogPath); err != nil || !strings.Contains(string(log), "dib: checksums of img.raw computed while the outputs were written") {
		t.Errorf("the image's checksum was not computed ahead (%v)", err)
	}
	if got, err := os.ReadFile(filepath.Join(outDir, "img.raw.sha256")); err != nil || string(got) != rawSum+"  img.raw\n" {
		t.Errorf("img.raw.sha256 = %q (%v), want the file's sha256", got, err)
	}
	if got, err := os.ReadFile(filepath.Join(outDir, "img.raw")); err != nil || len(got) != 32<<20 ||
		!strings.HasPrefix(string(got[8<<20:]), "built\n") {
		t.Fatalf("the raw output is not the assembled image (%d bytes, %v)", len(got), err)
	}
	c, list := cacheEntries(t, cacheDir)
	var state, raw *cache.Meta
	for _, m := range list {
		switch m.Title {
		case "write manifests":
			state = m
		case "output raw":
			raw = m
		}
	}
	if state == nil || state.Snapshot == nil || state.Snapshot.Disk != "img.raw" {
		t.Fatalf("the final state is not a disk snapshot: %+v", state)
	}
	if raw == nil {
		t.Fatal("no entry for the raw output")
	}
	a, err1 := os.Stat(c.Path(state.Key, state.Archive("disk")))
	b, err2 := os.Stat(c.Path(raw.Key, raw.Archive("outputs")))
	if err1 != nil || err2 != nil || !os.SameFile(a, b) {
		t.Errorf("the raw output's payload is not the disk snapshot's (%v, %v)", err1, err2)
	}

	// One more output: only it and its checksum run, on the cached image.
	more := cachePlan(t, nil, "vhd", "raw")
	r = applyCached(t, more, cacheDir, outDir, fakeDisk)
	if r.err != nil || !reflect.DeepEqual(r.ran, []string{"output vhd", "checksum img.vhd"}) {
		t.Fatalf("outputs-only: err %v, ran %q, cached %q", r.err, r.ran, r.cached)
	}
	if out, err := execOutput("qemu-img", "compare", "-f", "vpc", "-F", "raw",
		filepath.Join(outDir, "img.vhd"), filepath.Join(outDir, "img.raw")); err != nil {
		t.Errorf("the vhd is not made from the cold build's image: %v\n%s", err, out)
	}

	// The raw output removed: restored from its entry, the same bytes.
	os.Remove(filepath.Join(outDir, "img.raw"))
	r = applyCached(t, more, cacheDir, outDir, fakeDisk)
	if r.err != nil || len(r.ran) != 0 {
		t.Fatalf("restore: err %v, ran %q", r.err, r.ran)
	}
	if got := fileSum(t, filepath.Join(outDir, "img.raw")); got != rawSum {
		t.Errorf("the raw output restored from the cache differs from the cold build's")
	}
	// The raw output too, from the restored image, when its entry is gone
	// (its checksum's entry is still there); its new entry links the
	// restored snapshot's payload.
	if err := c.Drop(raw.Key); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(outDir, "img.raw"))
	r = applyCached(t, more, cacheDir, outDir, fakeDisk)
	if r.err != nil || !reflect.DeepEqual(r.ran, []string{"output raw"}) {
		t.Fatalf("raw output rebuilt: err %v, ran %q", r.err, r.ran)
	}
	if got := fileSum(t, filepath.Join(outDir, "img.raw")); got != rawSum {
		t.Errorf("the raw output from the restored image differs from the cold build's")
	}
	b, err2 = os.Stat(c.Path(raw.Key, raw.Archive("outputs")))
	if err2 != nil || !os.SameFile(a, b) {
		t.Errorf("the raw output's new payload is not the disk snapshot's (%v)", err2)
	}
}

// cacheEntries opens the cache in dir and lists its entries.
func cacheEntries(t *testing.T, dir string) (*cache.Cache, []*cache.Meta) {
	t.Helper()
	c, err := cache.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	list, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	return c, list
}

// TestCacheQcow2ClustersReused: a compressed qcow2 output's entry keeps
// the image's cluster index; the next build of the image (a finalise.d
// script edited) copies every cluster it shares from that entry instead
// of deflating it, and writes the file a build without the cache writes.
// A damaged index in the cache is reported and not used: the image is
// deflated and the same.
func TestCacheQcow2ClustersReused(t *testing.T) {
	disk := func(o *Options) {
		fakeDisk(o)
		assemble := o.fakeAssemble
		o.fakeAssemble = func(b *Build, s *plan.Step) error {
			if err := assemble(b, s); err != nil {
				return err
			}
			f, err := os.OpenFile(b.disk.raw, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			// 4 MiB of compressible data: 64 clusters, all different.
			var text []byte
			for i := 0; len(text) < 4<<20; i++ {
				text = fmt.Appendf(text, "line %d of the fake disk\n", i)
			}
			_, err = f.WriteAt(text[:4<<20], 0)
			return err
		}
	}
	compressed := func(p *plan.Plan) *plan.Plan {
		for i := range p.Steps {
			if o := p.Steps[i].Output; o != nil && o.Format == "qcow2" {
				o.Compress = true
			}
		}
		if err := p.Seal(); err != nil {
			t.Fatal(err)
		}
		return p
	}
	logOf := func(r cacheRun) string {
		b, err := os.ReadFile(r.events[0].LogPath)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	cacheDir, outDir := t.TempDir(), t.TempDir()
	r := applyCached(t, compressed(cachePlan(t, nil, "qcow2")), cacheDir, outDir, disk)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if strings.Contains(logOf(r), "clusters copied") {
		t.Fatal("the cold build copied clusters from an empty cache")
	}
	c, list := cacheEntries(t, cacheDir)
	var first *cache.Meta
	for _, m := range list {
		if m.Title == "output qcow2" {
			first = m
		}
	}
	if first == nil || first.Payload(clusterIndexPayload) == nil {
		t.Fatalf("the qcow2 output's entry keeps no cluster index: %+v", first)
	}

	edited := compressed(cachePlan(t, map[string]string{"finalise.d/10-final": "#!/bin/sh\necho edited > \"$TARGET_ROOT/etc/final\"\n"}, "qcow2"))
	r = applyCached(t, edited, cacheDir, outDir, disk)
	if r.err != nil || !slices.Contains(r.ran, "output qcow2") {
		t.Fatalf("edited: err %v, ran %q", r.err, r.ran)
	}
	// 64 text clusters and the marker's.
	if log := logOf(r); !strings.Contains(log, "dib: qcow2: 65 of 65 data clusters copied from the image of cache entry "+first.Key[:12]) {
		t.Fatalf("the rebuild did not copy the clusters:\n%s", log)
	}
	reused := fileSum(t, filepath.Join(outDir, "img.qcow2"))
	plainOut := t.TempDir()
	r = applyCached(t, edited, "", plainOut, disk)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if fileSum(t, filepath.Join(plainOut, "img.qcow2")) != reused {
		t.Fatal("the image written with copied clusters differs from the one written without the cache")
	}

	// The index of the newest entry damaged: not used, the same image.
	_, list = cacheEntries(t, cacheDir)
	for _, m := range list {
		if m.Payload(clusterIndexPayload) != nil {
			name := c.Path(m.Key, clusterIndexPayload)
			b, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)-1] ^= 1
			if err := os.WriteFile(name, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	again := compressed(cachePlan(t, map[string]string{"finalise.d/10-final": "#!/bin/sh\necho again > \"$TARGET_ROOT/etc/final\"\n"}, "qcow2"))
	r = applyCached(t, again, cacheDir, outDir, disk)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if log := logOf(r); strings.Contains(log, "clusters copied") || !strings.Contains(log, "not copying clusters from cache entry") || !strings.Contains(log, "corrupt") {
		t.Fatalf("a damaged index was used or not reported:\n%s", log)
	}
	if fileSum(t, filepath.Join(outDir, "img.qcow2")) != reused {
		t.Fatal("the image written after a damaged index differs")
	}
}

// TestSlotsBoundSteps: two builds sharing one slot (dib apply -j 1 of two
// images in progress) never run steps at the same time, and the one that
// waits for a step the other runs (their common prefix) holds no slot
// meanwhile, so both finish.
func TestSlotsBoundSteps(t *testing.T) {
	requireGNUTar(t)
	var fl cache.Flights
	slots := NewSlots(1)
	cacheDir := t.TempDir()
	res := make([]cacheRun, 2)
	var wg sync.WaitGroup
	for i := range res {
		p := cachePlan(t, map[string]string{"post-root.d/10-post": fmt.Sprintf("#!/bin/sh\nsleep 0.3\necho %d > \"$TARGET_ROOT/etc/post\"\n", i)})
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = applyCached(t, p, cacheDir, t.TempDir(), func(o *Options) { o.Flights, o.Slots = &fl, slots })
		}()
	}
	wg.Wait()
	type span struct {
		from, to time.Time
		what     string
	}
	var spans []span
	for i, r := range res {
		if r.err != nil {
			t.Fatalf("build %d: %v", i, r.err)
		}
		started := map[string]time.Time{}
		for _, e := range r.events {
			switch e.Type {
			case StepStarted:
				started[e.Step] = e.Time
			case StepFinished:
				spans = append(spans, span{started[e.Step], e.Time, fmt.Sprintf("build %d %s", i, e.Title)})
			}
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].from.Before(spans[j].from) })
	for i := 1; i < len(spans); i++ {
		if spans[i].from.Before(spans[i-1].to) {
			t.Errorf("%s started before %s finished", spans[i].what, spans[i-1].what)
		}
	}
	if len(spans) < len(allSteps)+3 {
		t.Errorf("%d steps ran; want the common ones once and the rest twice", len(spans))
	}
}

// TestCacheOutputPayloadCorrupt: the tar output's copy in the cache
// (cache.OutputPayload, written with the output) damaged and the output
// removed: the copy is found corrupt by its sha256, nothing half-restored
// stays, and the output is built again, the same bytes.
func TestCacheOutputPayloadCorrupt(t *testing.T) {
	requireGNUTar(t)
	cacheDir, outDir := t.TempDir(), t.TempDir()
	p := cachePlan(t, nil)
	if r := applyCached(t, p, cacheDir, outDir, nil); r.err != nil {
		t.Fatal(r.err)
	}
	tarSum := fileSum(t, filepath.Join(outDir, "img.tar"))
	c, list := cacheEntries(t, cacheDir)
	var out *cache.Meta
	for _, m := range list {
		if m.Title == "output tar" {
			out = m
		}
	}
	if out == nil || out.Payload(cache.OutputPayload) == nil || fileSum(t, c.Path(out.Key, cache.OutputPayload)) != tarSum {
		t.Fatalf("the tar output's entry does not hold the archive itself: %+v", out)
	}
	f, err := os.OpenFile(c.Path(out.Key, cache.OutputPayload), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xff}, 700)
	f.Close()
	os.Remove(filepath.Join(outDir, "img.tar"))
	r := applyCached(t, p, cacheDir, outDir, nil)
	if r.err != nil || !slices.Contains(r.ran, "output tar") {
		t.Fatalf("err %v, ran %q", r.err, r.ran)
	}
	corrupt := 0
	for _, e := range r.events {
		if e.Type == CacheCorrupt {
			corrupt++
		}
	}
	if corrupt != 1 {
		t.Errorf("%d corrupt events, want 1", corrupt)
	}
	if got := fileSum(t, filepath.Join(outDir, "img.tar")); got != tarSum {
		t.Error("the rebuilt tar differs")
	}
	if left, _ := filepath.Glob(filepath.Join(outDir, ".dib-restore-*")); len(left) != 0 {
		t.Errorf("staging directories left: %v", left)
	}
	if left, _ := filepath.Glob(filepath.Join(cacheDir, "tmp", "*")); len(left) != 0 {
		t.Errorf("the cache's tmp/ holds %v", left)
	}
}

// TestImagesShareWhatTheirNameDoesNotReach: two images that differ only
// in their name (IMAGE_NAME, an identity variable) share the phases no
// file of which names it: the second build takes the bootstrap, the hook
// tree and root.d from the cache and runs post-root.d, whose script
// writes the name, so each image holds its own.
func TestImagesShareWhatTheirNameDoesNotReach(t *testing.T) {
	requireGNUTar(t)
	named := func(name string) *plan.Plan {
		p := cachePlan(t, map[string]string{
			"root.d/10-make":      "#!/bin/sh\nset -e\nmkdir -p \"$TARGET_ROOT/etc\" \"$TARGET_ROOT/tmp\" \"$TARGET_ROOT/var/log\"\necho built > \"$TARGET_ROOT/etc/marker\"\n",
			"post-root.d/10-post": "#!/bin/sh\nbasename \"$IMAGE_NAME\" > \"$TARGET_ROOT/etc/name\"\n",
		})
		p.Image.Name = name
		p.Env = append(p.Env, plan.EnvVar{Name: "IMAGE_NAME", Value: name, Identity: true})
		for i := range p.Steps {
			if p.Steps[i].Kind == plan.KindPhase {
				p.Steps[i].Env = append(p.Steps[i].Env, "IMAGE_NAME")
			}
		}
		if err := p.Seal(); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cacheDir := t.TempDir()
	if r := applyCached(t, named("web"), cacheDir, t.TempDir(), nil); r.err != nil {
		t.Fatal(r.err)
	}
	out := t.TempDir()
	r := applyCached(t, named("db"), cacheDir, out, nil)
	if r.err != nil {
		t.Fatal(r.err)
	}
	for _, want := range []string{"bootstrap", "write hook tree", "phase root.d"} {
		if !slices.Contains(r.cached, want) {
			t.Errorf("%s not taken from the other image's build (cached %q, ran %q)", want, r.cached, r.ran)
		}
	}
	if !slices.Contains(r.ran, "phase post-root.d") {
		t.Errorf("post-root.d, which reads the name, did not run (ran %q)", r.ran)
	}
	if got := readTarFile(t, filepath.Join(out, "img.tar"))["./etc/name"]; got != "db\n" {
		t.Errorf("etc/name in the second image: %q", got)
	}
}

// TestWaiterRestoresOnce: a build that waits for the steps another build
// runs for both does not restore each state the other writes on its way:
// the leader claims its next steps as it releases the last (Flights.Pass),
// so the waiter waits for those too and restores once, the last state
// they share. Every step-cached event of the waiter comes after its last
// step-waiting event.
func TestWaiterRestoresOnce(t *testing.T) {
	requireGNUTar(t)
	p := cachePlan(t, map[string]string{
		"root.d/10-make":      rootD + "sleep 1\n",
		"post-root.d/10-post": "#!/bin/sh\n# point\nsleep 1\necho post >> \"$TARGET_ROOT/etc/post\"\n",
	})
	var fl cache.Flights
	res := concurrentApplies(t, p, t.TempDir(), func(o *Options) { o.Flights = &fl })
	waiters := 0
	for _, r := range res {
		if r.err != nil {
			t.Fatal(r.err)
		}
		lastWait, firstCached, waits := -1, -1, 0
		for k, e := range r.events {
			switch e.Type {
			case StepWaiting:
				lastWait = k
				waits++
			case StepCached:
				if firstCached < 0 {
					firstCached = k
				}
			}
		}
		if waits == 0 {
			continue
		}
		waiters++
		if waits < 2 {
			t.Errorf("the waiter waited %d times; want one wait per range the leader ran (bootstrap and root.d, post-root.d, …)", waits)
		}
		if firstCached >= 0 && firstCached < lastWait {
			t.Errorf("the waiter restored a state (event %d) before it waited again (event %d): ran %q, cached %q", firstCached, lastWait, r.ran, r.cached)
		}
	}
	if waiters != 1 {
		t.Errorf("%d builds waited, want 1", waiters)
	}
}
