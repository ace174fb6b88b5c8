package remote

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dibuild/dib/internal/registrytest"
	"github.com/dibuild/dib/runtime/cache"
)

const keyA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

// entry writes a cache entry with two payload files and a directory.
func entry(t *testing.T, c *cache.Cache, key string, files map[string]string) *cache.Meta {
	t.Helper()
	w, err := c.Begin(cache.Meta{Key: key, Step: "s-1", Kind: "phase", Title: "phase install.d", Image: "img", Index: 3, Inputs: []string{"cache dib-cache-v1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if err := w.AddDir("out", 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		f, err := w.Create(name, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte(data))
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	w.SetSnapshot(cache.Snapshot{Tree: "built", Hooks: true})
	m, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func openCache(t *testing.T) *cache.Cache {
	t.Helper()
	c, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRoundTrip pushes an entry to a real registry and pulls it into an
// empty cache: the same record and payload, every file verified; a second
// push sends no blob again.
func TestRoundTrip(t *testing.T) {
	reg := registrytest.Start(t)
	ctx := context.Background()
	src := openCache(t)
	m := entry(t, src, keyA, map[string]string{"tree.tar.zst": strings.Repeat("tree", 5000), "hooks.tar.zst": "hooks"})

	r, err := Open(reg.Ref("dib/cache"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r.Lookup(ctx, keyA); err != nil || got != nil {
		t.Fatalf("lookup before push: %v, %v", got, err)
	}
	n, err := r.Push(ctx, src, m)
	if err != nil || n < 20005 {
		t.Fatalf("push: %d bytes, %v", n, err)
	}
	if n, err := r.Push(ctx, src, m); err != nil || n > 4096 {
		t.Errorf("second push sent %d bytes (want only the manifest), %v", n, err)
	}
	if ok, err := r.Has(ctx, keyA); !ok || err != nil {
		t.Errorf("Has after push: %v, %v", ok, err)
	}

	// Another machine: a new Remote and an empty cache.
	r2, _ := Open(reg.Ref("dib/cache"))
	dst := openCache(t)
	got, err := r2.Lookup(ctx, keyA)
	if err != nil || got == nil {
		t.Fatalf("lookup: %v, %v", got, err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("record pulled:\n%+v\nwant\n%+v", got, m)
	}
	if _, err := r2.Pull(ctx, dst, keyA); err != nil {
		t.Fatal(err)
	}
	local, err := dst.Get(keyA)
	if err != nil || local == nil {
		t.Fatalf("pulled entry not in the local cache: %v", err)
	}
	if err := dst.Verify(local); err != nil {
		t.Error(err)
	}
	if !reflect.DeepEqual(local.Files, m.Files) || !reflect.DeepEqual(local.Snapshot, m.Snapshot) {
		t.Errorf("local entry %+v, want %+v", local, m)
	}
	b, _ := os.ReadFile(dst.Path(keyA, "hooks.tar.zst"))
	if string(b) != "hooks" {
		t.Errorf("hooks.tar.zst = %q", b)
	}
	if fi, err := os.Stat(dst.Path(keyA, "out")); err != nil || !fi.IsDir() {
		t.Errorf("directory of the entry not pulled: %v", err)
	}
}

// TestCorruptBlobRejected damages a layer in the registry's storage (same
// size, other bytes): the pull fails with cache.ErrCorrupt and leaves no
// entry in the local cache.
func TestCorruptBlobRejected(t *testing.T) {
	reg := registrytest.Start(t)
	ctx := context.Background()
	src := openCache(t)
	m := entry(t, src, keyA, map[string]string{"tree.tar.zst": strings.Repeat("tree", 5000)})
	r, _ := Open(reg.Ref("dib/cache"))
	if _, err := r.Push(ctx, src, m); err != nil {
		t.Fatal(err)
	}
	var tree cache.File
	for _, f := range m.Files {
		if f.Name == "tree.tar.zst" {
			tree = f
		}
	}
	blob := reg.BlobPath(tree.SHA256)
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(blob, data, 0o644); err != nil {
		t.Fatal(err)
	}

	r2, _ := Open(reg.Ref("dib/cache"))
	dst := openCache(t)
	if got, err := r2.Lookup(ctx, keyA); err != nil || got == nil {
		t.Fatalf("lookup: %v, %v", got, err)
	}
	_, err = r2.Pull(ctx, dst, keyA)
	if !errors.Is(err, cache.ErrCorrupt) {
		t.Fatalf("pull of a corrupt layer: %v, want cache.ErrCorrupt", err)
	}
	if local, _ := dst.Get(keyA); local != nil {
		t.Error("the corrupt entry is in the local cache")
	}
	if ents, _ := os.ReadDir(filepath.Join(dst.Dir, "tmp")); len(ents) != 0 {
		t.Errorf("the aborted pull left %d directories in tmp/", len(ents))
	}
}

// TestOpenRefs accepts REGISTRY/REPO with or without a scheme and refuses
// tags, digests and a missing repository.
func TestOpenRefs(t *testing.T) {
	for ref, plain := range map[string]bool{"http://127.0.0.1:5000/dib": true, "registry.example.org/dib/cache": false, "https://r.example.org:443/x/": false} {
		r, err := Open(ref)
		if err != nil {
			t.Errorf("%s: %v", ref, err)
			continue
		}
		if r.repo.PlainHTTP != plain {
			t.Errorf("%s: plain HTTP %v", ref, r.repo.PlainHTTP)
		}
	}
	for _, ref := range []string{"registry.example.org", "r.example.org/dib:latest", "r.example.org/dib@sha256:00", "http://", "r.example.org/UPPER"} {
		if _, err := Open(ref); err == nil {
			t.Errorf("%s: accepted", ref)
		}
	}
}

// TestShareable leaves out steps that see a secret and everything whose
// key chains to them; outputs of a clean final state stay shareable.
func TestShareable(t *testing.T) {
	k := func(key string, state bool, lines ...string) cache.Key {
		return cache.Key{Key: key, State: state, Inputs: append([]string{"cache dib-cache-v1"}, lines...)}
	}
	shared := func(keys []cache.Key) []bool {
		m := Shareable(keys, false)
		var out []bool
		for _, k := range keys {
			out = append(out, m[k.Key])
			for _, pt := range k.Points {
				out = append(out, m[pt.Key])
			}
		}
		return out
	}
	clean := []cache.Key{
		k("s1", true, "step x"),
		k("s2", true, "prev s1"),
		k("o1", false, "state s2"),
		k("o2", false, "state s2", "dep o1"),
		k("o3", false, "state s2", "secret DIB_SIGNING_KEY hmac:00"),
		k("c3", false, "state s2", "dep o3"),
	}
	if got, want := shared(clean), []bool{true, true, true, true, false, false}; !reflect.DeepEqual(got, want) {
		t.Errorf("Shareable = %v, want %v", got, want)
	}
	secret := []cache.Key{
		k("s1", true, "step x"),
		k("s2", true, "prev s1", "secret DIB_PASSWORD hmac:00"),
		k("o1", false, "state s3"),
		k("s3", true, "prev s2"),
	}
	// A point inside a step: the step's lines, cut.
	secret[0].Points = []cache.Point{{Scripts: 1, Key: "p1", Inputs: []string{"step x1", "scripts 1 through a"}}}
	secret[1].Points = []cache.Point{{Scripts: 1, Key: "p2", Inputs: []string{"prev s1", "secret DIB_PASSWORD hmac:00"}}}
	if got, want := shared(secret), []bool{true, true, false, false, false, false}; !reflect.DeepEqual(got, want) {
		t.Errorf("Shareable = %v, want %v", got, want)
	}
	// With a key the fleet shares, everything is.
	for k, ok := range Shareable(secret, true) {
		if !ok {
			t.Errorf("%s not shareable with a shared key", k)
		}
	}
}
