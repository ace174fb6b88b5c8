package runtime

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/internal/registrytest"
	"github.com/dibuild/dib/runtime/cache/remote"
)

func TestPlanCacheStatus(t *testing.T) {
	requireGNUTar(t)
	cacheDir := t.TempDir()
	p := cachePlan(t, nil)
	o := Options{CacheDir: cacheDir, Secrets: map[string]string{"DIB_PASSWORD": "hunter2"}}
	r, err := PlanCache(context.Background(), p, o)
	if err != nil || r.Status[p.Steps[0].ID] != "will run: the build cache is empty" {
		t.Fatalf("empty cache: %v %v", err, r)
	}
	if res := applyCached(t, p, cacheDir, t.TempDir(), nil); res.err != nil {
		t.Fatal(res.err)
	}
	r, err = PlanCache(context.Background(), p, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Steps {
		if !strings.HasPrefix(r.Status[s.ID], "cached") {
			t.Errorf("%s: %q after a build", s.Title, r.Status[s.ID])
		}
	}
	edited := cachePlan(t, map[string]string{"post-root.d/10-post": "#!/bin/sh\necho edited\n"})
	r, err = PlanCache(context.Background(), edited, o)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"phase root.d":      "cached: state restored from the snapshot after step 3",
		"phase post-root.d": "will run: changed: scripts[0].sha256 (post-root.d/10-post)",
		"phase finalise.d":  "will run: an earlier step runs (step 4)",
	}
	for _, s := range edited.Steps {
		if w, ok := want[s.Title]; ok && r.Status[s.ID] != w {
			t.Errorf("%s: %q, want %q", s.Title, r.Status[s.ID], w)
		}
	}
	// A changed secret is named, never shown.
	o.Secrets = map[string]string{"DIB_PASSWORD": "changed"}
	r, _ = PlanCache(context.Background(), p, o)
	for _, s := range p.Steps {
		if s.Title == "phase finalise.d" && r.Status[s.ID] != "will run: changed: secret DIB_PASSWORD" {
			t.Errorf("finalise.d with a new secret: %q", r.Status[s.ID])
		}
	}
}

// TestPlanCacheRegistry: with a registry, the report shows the steps an
// apply would take from it as cached, and says which are pulled; it reads
// the registry's records and writes nothing. A registry that cannot be
// reached is reported and the steps show as without it.
func TestPlanCacheRegistry(t *testing.T) {
	requireGNUTar(t)
	reg := registrytest.Start(t)
	ref := reg.Ref("dib/cache")
	p := noSecretPlan(t)
	if r := applyCached(t, p, t.TempDir(), t.TempDir(), withRegistry(t, "", ref)); r.err != nil {
		t.Fatal(r.err)
	}
	from, err := remote.Open(ref)
	if err != nil {
		t.Fatal(err)
	}
	// Another machine, before its first build: no local cache at all.
	empty := filepath.Join(t.TempDir(), "cache")
	status := func(p *plan.Plan, o Options) []string {
		t.Helper()
		r, err := PlanCache(context.Background(), p, o)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.RegistryErrors) > 0 {
			t.Errorf("registry errors: %q", r.RegistryErrors)
		}
		var out []string
		for _, s := range p.Steps {
			out = append(out, s.Title+": "+r.Status[s.ID])
		}
		return out
	}
	in, pulled := " (in the registry "+ref+")", " (pulled from the registry "+ref+")"
	want := []string{
		"bootstrap: cached" + in,
		"write hook tree: cached" + in,
		"phase root.d: cached" + in,
		"phase post-root.d: cached" + in,
		"phase finalise.d: cached" + in,
		"write manifests: cached: outputs restored from the cache" + pulled,
		"output tar: cached: outputs restored from the cache" + pulled,
		"checksum: cached: outputs restored from the cache" + pulled,
	}
	if got := status(p, Options{CacheDir: empty, CacheFrom: from}); !reflect.DeepEqual(got, want) {
		t.Errorf("warm registry, no local cache:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The Dibfile's cache.registry is used the same way, unless turned
	// off (dib plan --cache-from off).
	withReg := noSecretPlan(t)
	withReg.Cache = &plan.CacheSettings{Registry: ref}
	if got := status(withReg, Options{CacheDir: empty}); !reflect.DeepEqual(got, want) {
		t.Errorf("with cache.registry:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, st := range status(withReg, Options{CacheDir: empty, NoCacheRegistry: true}) {
		if !strings.HasSuffix(st, ": will run: the build cache is empty") {
			t.Errorf("without the registry: %s", st)
		}
	}
	// An edited post-root.d: the state after root.d is pulled (the
	// snapshot and the bootstrap's it is a layer on), the rest runs.
	edited := cachePlan(t, map[string]string{"post-root.d/10-post": "#!/bin/sh\necho edited\n"})
	for i := range edited.Steps {
		edited.Steps[i].Env = nil
	}
	if err := edited.Seal(); err != nil {
		t.Fatal(err)
	}
	want = []string{
		"bootstrap: cached: state restored from the snapshot after step 3" + pulled,
		"write hook tree: cached: state restored from the snapshot after step 3" + pulled,
		"phase root.d: cached: state restored from the snapshot after step 3" + pulled,
		"phase post-root.d: will run: not in the cache nor in the registry " + ref,
		"phase finalise.d: will run: an earlier step runs (step 4)",
		"write manifests: will run: an earlier step runs (step 4)",
		"output tar: will run: not in the cache nor in the registry " + ref,
		"checksum: will run: not in the cache nor in the registry " + ref,
	}
	if got := status(edited, Options{CacheDir: empty, CacheFrom: from}); !reflect.DeepEqual(got, want) {
		t.Errorf("edited post-root.d:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Nothing was written: no local cache appeared.
	if _, err := os.Stat(empty); !os.IsNotExist(err) {
		t.Errorf("the report made the cache directory: %v", err)
	}

	// Build the edited plan from the registry: the local cache now holds
	// the bootstrap's and root.d's snapshots (pulled), not the other
	// entries of the first plan, which the registry has.
	local := t.TempDir()
	if r := applyCached(t, edited, local, t.TempDir(), withRegistry(t, ref, "")); r.err != nil {
		t.Fatal(r.err)
	}
	want = []string{
		"bootstrap: cached",
		"write hook tree: cached" + in,
		"phase root.d: cached",
		"phase post-root.d: cached" + in,
		"phase finalise.d: cached" + in,
		"write manifests: cached: outputs restored from the cache" + pulled,
		"output tar: cached: outputs restored from the cache" + pulled,
		"checksum: cached: outputs restored from the cache" + pulled,
	}
	if got := status(p, Options{CacheDir: local, CacheFrom: from}); !reflect.DeepEqual(got, want) {
		t.Errorf("local cache and registry:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A registry that does not answer: said once, the steps as without it.
	down, _ := remote.Open("http://127.0.0.1:1/dib/cache")
	r, err := PlanCache(context.Background(), p, Options{CacheDir: empty, CacheFrom: down})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.RegistryErrors) != 1 || !strings.Contains(r.RegistryErrors[0], "127.0.0.1:1") {
		t.Errorf("registry errors: %q", r.RegistryErrors)
	}
	if st := r.Status[p.Steps[0].ID]; st != "will run: not in the cache nor in the registry http://127.0.0.1:1/dib/cache" {
		t.Errorf("bootstrap with the registry down: %q", st)
	}
}
