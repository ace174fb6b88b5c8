package runtime

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/internal/registrytest"
	"github.com/dibuild/dib/runtime/cache"
	"github.com/dibuild/dib/runtime/cache/remote"
)

// withRegistry sets the registries an apply pulls from and pushes to.
func withRegistry(t *testing.T, from, to string) func(*Options) {
	return func(o *Options) {
		var err error
		if from != "" {
			if o.CacheFrom, err = remote.Open(from); err != nil {
				t.Fatal(err)
			}
		}
		if to != "" {
			if o.CacheTo, err = remote.Open(to); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func eventsOf(r cacheRun, typ string) []Event {
	var out []Event
	for _, e := range r.events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// noSecretPlan is cachePlan without the secret finalise.d sees.
func noSecretPlan(t *testing.T, outputs ...string) *plan.Plan {
	p := cachePlan(t, nil, outputs...)
	for i := range p.Steps {
		p.Steps[i].Env = nil
	}
	if err := p.Seal(); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRegistryRoundTrip builds on one cache pushing to a real registry,
// then on an empty cache pulling from it: nothing runs, the outputs are
// the same; then a corrupt layer in the registry's storage is rejected
// and only its step is rebuilt.
func TestRegistryRoundTrip(t *testing.T) {
	requireGNUTar(t)
	reg := registrytest.Start(t)
	ref := reg.Ref("dib/cache")
	p := noSecretPlan(t)
	out1, cache1 := t.TempDir(), t.TempDir()
	r := applyCached(t, p, cache1, out1, withRegistry(t, "", ref))
	if r.err != nil || !reflect.DeepEqual(r.ran, allSteps) {
		t.Fatalf("cold build with --cache-to: %v, ran %q", r.err, r.ran)
	}
	// Every entry is pushed: the snapshots, the records of the steps
	// between them, the outputs.
	if got := len(eventsOf(r, CachePushed)); got != len(allSteps) {
		t.Errorf("%d entries pushed, want %d: %+v", got, len(allSteps), r.events)
	}
	tarSum := fileSum(t, filepath.Join(out1, "img.tar"))

	// A second machine: empty local cache, the registry warm.
	out2, cache2 := t.TempDir(), t.TempDir()
	r = applyCached(t, p, cache2, out2, withRegistry(t, ref, ""))
	if r.err != nil || len(r.ran) != 0 || !reflect.DeepEqual(r.cached, allSteps) {
		t.Fatalf("from the registry: %v, ran %q, cached %q", r.err, r.ran, r.cached)
	}
	if got := fileSum(t, filepath.Join(out2, "img.tar")); got != tarSum {
		t.Error("the tar restored from the registry differs")
	}
	// Only the entries with outputs were pulled (nothing runs, no state
	// is needed): the manifests, the tar, its checksum.
	var pulled []string
	for _, e := range eventsOf(r, CachePulled) {
		pulled = append(pulled, e.Title)
	}
	if want := []string{"write manifests", "output tar", "checksum"}; !reflect.DeepEqual(pulled, want) {
		t.Errorf("pulled %q, want %q", pulled, want)
	}

	// A new output needs the final state: its snapshot is pulled and
	// only the new output's steps run. The registry is the plan's
	// (cache.registry in the Dibfile).
	p2 := noSecretPlan(t, "tar", "tgz")
	p2.Cache = &plan.CacheSettings{Registry: ref}
	r = applyCached(t, p2, t.TempDir(), t.TempDir(), nil)
	if r.err != nil || !reflect.DeepEqual(r.ran, []string{"output tgz", "checksum img.tgz"}) {
		t.Fatalf("new output from the registry: %v, ran %q", r.err, r.ran)
	}
	// The final snapshot is a layer on the one after root.d, itself a
	// layer on the bootstrap's: the whole chain is pulled, with the
	// outputs reused.
	pulled = nil
	for _, e := range eventsOf(r, CachePulled) {
		pulled = append(pulled, e.Title)
	}
	if want := []string{"bootstrap", "phase root.d", "write manifests", "output tar", "checksum"}; !reflect.DeepEqual(pulled, want) {
		t.Errorf("pulled %q, want %q", pulled, want)
	}

	// Damage the tar output's layer in the registry's storage (same size,
	// other bytes): the pull is rejected as corrupt, the entry is not
	// used, and the output is made again from the pulled final state.
	c1, err := cache.Open(cache1)
	if err != nil {
		t.Fatal(err)
	}
	list, _ := c1.List()
	var blob string
	for _, m := range list {
		for _, f := range m.Files {
			if m.Title == "output tar" && f.Name == m.OutputsPayload() {
				blob = reg.BlobPath(f.SHA256)
			}
		}
	}
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatalf("the tar's layer in the registry: %v", err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(blob, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out3 := t.TempDir()
	r = applyCached(t, p, t.TempDir(), out3, withRegistry(t, ref, ""))
	if r.err != nil || !reflect.DeepEqual(r.ran, []string{"output tar"}) {
		t.Fatalf("with a corrupt layer: %v, ran %q", r.err, r.ran)
	}
	if bad := eventsOf(r, CacheCorrupt); len(bad) != 1 || bad[0].Title != "output tar" || !strings.Contains(bad[0].Error, "digest") {
		t.Errorf("corrupt events %+v", bad)
	}
	if got := fileSum(t, filepath.Join(out3, "img.tar")); got != tarSum {
		t.Error("the tar rebuilt after the corrupt pull differs")
	}
}

// TestRegistrySecretsNotPushed: steps that see a secret, and every step
// built on them, stay on the machine; another machine pulls the state
// before them and runs the rest.
func TestRegistrySecretsNotPushed(t *testing.T) {
	requireGNUTar(t)
	reg := registrytest.Start(t)
	ref := reg.Ref("dib/cache")
	p := cachePlan(t, nil) // finalise.d sees DIB_PASSWORD
	r := applyCached(t, p, t.TempDir(), t.TempDir(), withRegistry(t, "", ref))
	if r.err != nil {
		t.Fatal(r.err)
	}
	var pushed []string
	for _, e := range eventsOf(r, CachePushed) {
		pushed = append(pushed, e.Title)
	}
	if want := []string{"bootstrap", "write hook tree", "phase root.d", "phase post-root.d"}; !reflect.DeepEqual(pushed, want) {
		t.Errorf("pushed %q, want %q", pushed, want)
	}
	r = applyCached(t, p, t.TempDir(), t.TempDir(), withRegistry(t, ref, ""))
	if want := []string{"phase post-root.d", "phase finalise.d", "write manifests", "output tar", "checksum"}; r.err != nil || !reflect.DeepEqual(r.ran, want) {
		t.Fatalf("from the registry: %v, ran %q, want %q", r.err, r.ran, want)
	}

	// Machines that share a secret key compute the same keys for the
	// steps that see the secret: everything is pushed, and another
	// machine runs nothing.
	shared := func(from, to string) func(*Options) {
		return func(o *Options) {
			withRegistry(t, from, to)(o)
			o.CacheSecretKey = []byte("0123456789abcdef0123456789abcdef")
		}
	}
	// (The steps before the secret have the same keys: already there.)
	r = applyCached(t, p, t.TempDir(), t.TempDir(), shared("", ref))
	pushed = nil
	for _, e := range eventsOf(r, CachePushed) {
		pushed = append(pushed, e.Title)
	}
	if want := []string{"phase finalise.d", "write manifests", "output tar", "checksum"}; r.err != nil || !reflect.DeepEqual(pushed, want) {
		t.Fatalf("push with a shared key: %v, pushed %q, want %q", r.err, pushed, want)
	}
	r = applyCached(t, p, t.TempDir(), t.TempDir(), shared(ref, ""))
	if r.err != nil || len(r.ran) != 0 {
		t.Fatalf("from the registry with a shared key: %v, ran %q", r.err, r.ran)
	}
}

// TestRegistryUnreachable: a registry that does not answer is reported
// and the build goes on: every step runs, nothing is pushed, the build
// succeeds.
func TestRegistryUnreachable(t *testing.T) {
	requireGNUTar(t)
	ref := "http://127.0.0.1:1/dib/cache" // port 1: nothing listens
	r := applyCached(t, noSecretPlan(t), t.TempDir(), t.TempDir(), withRegistry(t, ref, ref))
	if r.err != nil || !reflect.DeepEqual(r.ran, allSteps) {
		t.Fatalf("%v, ran %q", r.err, r.ran)
	}
	// Said once for the pull, once for the push.
	errs := eventsOf(r, CacheRemoteError)
	if len(errs) != 2 || !strings.Contains(errs[0].Error, "127.0.0.1:1") || !strings.Contains(errs[1].Error, "nothing pushed") {
		t.Errorf("registry errors %+v", errs)
	}
	if n := len(eventsOf(r, CachePushed)); n != 0 {
		t.Errorf("%d entries pushed to nowhere", n)
	}
}
