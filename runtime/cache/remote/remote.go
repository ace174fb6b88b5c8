// Package remote shares dib's build cache (runtime/cache) through an OCI
// registry: `dib apply --cache-to` pushes the entries of a build, and
// `--cache-from` pulls the entries a build can use into the local cache
// before they are restored as usual.
//
// Each cache entry is one OCI image manifest tagged with the entry's cache
// key (the key derives from the plan step's ID, chained with the steps
// before it, see cache.Keys):
//
//	artifactType  application/vnd.dib.cache.step.v1
//	config        application/vnd.dib.cache.entry.v1+json: the entry's record (meta.json)
//	layers        application/vnd.dib.cache.file.v1: one per payload file,
//	              its digest the sha256 the record lists, its name in the
//	              org.opencontainers.image.title annotation
//
// Blobs are content-addressed, so two entries with the same payload (the
// same snapshot under two keys) share it in the registry. Every byte
// pulled is checked against its digest (the manifest against the tag's
// digest, the record and every layer against the manifest), and every
// payload file against the record: an entry that does not match is
// reported and not used; the step is rebuilt.
//
// Steps that see a secret are not pushed, nor any step built on them
// (Shareable): their key holds an HMAC of the secret under the local
// cache's own key, which no other machine has, and their state may hold
// what the secret became (a password hash in /etc/shadow). A fleet that
// shares a secret key (cache.ShareSecretKey) pushes them too.
//
// Credentials and TLS are Docker's: ~/.docker/config.json (or
// $DOCKER_CONFIG/config.json) and its credential helpers, the system's
// certificate authorities. A reference starting with http:// is reached
// over plain HTTP (for a registry on 127.0.0.1); every other one over
// HTTPS.
package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/dibuild/dib/runtime/cache"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	orasremote "oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/retry"
)

// Media types of dib's cache artifacts (docs/cache.md).
const (
	ArtifactType  = "application/vnd.dib.cache.step.v1"
	MediaTypeMeta = "application/vnd.dib.cache.entry.v1+json"
	MediaTypeFile = "application/vnd.dib.cache.file.v1"
)

// Annotations of a cache manifest, for people browsing the registry.
const (
	AnnotationStep  = "io.github.dibuild.dib.step"
	AnnotationTitle = "io.github.dibuild.dib.title"
)

// maxMeta bounds the size of a manifest or record read from a registry.
const maxMeta = 4 << 20

// Remote is a repository of a registry holding cache entries.
type Remote struct {
	// Ref is the reference as given (for messages).
	Ref  string
	repo *orasremote.Repository

	mu sync.Mutex
	// found holds what Lookup fetched, by key, for Pull.
	found map[string]*found
}

type found struct {
	manifest ocispec.Manifest
	meta     *cache.Meta
}

// Open connects to REGISTRY/REPO (http://REGISTRY/REPO for plain HTTP);
// nothing is sent until the first lookup or push.
func Open(ref string) (*Remote, error) {
	name, plain := strings.CutPrefix(ref, "http://")
	name = strings.TrimPrefix(name, "https://")
	name = strings.TrimSuffix(name, "/")
	if i := strings.Index(name, "/"); i < 0 || strings.Contains(name[i:], ":") || strings.Contains(name, "@") {
		return nil, fmt.Errorf("cache registry %q: give REGISTRY/REPOSITORY, without a tag or digest (each step has its own tag)", ref)
	}
	repo, err := orasremote.NewRepository(name)
	if err != nil {
		return nil, fmt.Errorf("cache registry %q: %v (want REGISTRY/REPOSITORY, e.g. registry.example.org/dib/cache or http://127.0.0.1:5000/dib)", ref, err)
	}
	store, err := credentials.NewStoreFromDocker(credentials.StoreOptions{})
	if err != nil {
		return nil, fmt.Errorf("cache registry %s: reading the Docker configuration: %w", ref, err)
	}
	repo.PlainHTTP = plain
	repo.MaxMetadataBytes = maxMeta
	repo.Client = &auth.Client{
		Client:     retry.DefaultClient,
		Cache:      auth.NewCache(),
		Credential: credentials.Credential(store),
	}
	return &Remote{Ref: ref, repo: repo, found: map[string]*found{}}, nil
}

// tag is the tag of the entry with the given cache key: the key itself
// (64 hex digits).
func tag(key string) string { return key }

// Lookup returns the record of the entry with the given key in the
// registry, or nil when there is none. A record that is not what it
// claims is an error (the entry is not used).
func (r *Remote) Lookup(ctx context.Context, key string) (*cache.Meta, error) {
	r.mu.Lock()
	f := r.found[key]
	r.mu.Unlock()
	if f != nil {
		return f.meta, nil
	}
	desc, rc, err := r.repo.FetchReference(ctx, tag(key))
	if errors.Is(err, errdef.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Ref, err)
	}
	raw, err := content.ReadAll(rc, desc)
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: manifest of %s: %w", r.Ref, short(key), err)
	}
	var man ocispec.Manifest
	if err := json.Unmarshal(raw, &man); err != nil {
		return nil, fmt.Errorf("%s: manifest of %s: %w", r.Ref, short(key), err)
	}
	if man.ArtifactType != ArtifactType || man.Config.MediaType != MediaTypeMeta {
		return nil, fmt.Errorf("%s: tag %s is not a dib cache entry (artifact type %q)", r.Ref, short(key), man.ArtifactType)
	}
	if man.Config.Size > maxMeta {
		return nil, fmt.Errorf("%s: record of %s: %d bytes, more than %d", r.Ref, short(key), man.Config.Size, maxMeta)
	}
	cfg, err := r.fetch(ctx, man.Config)
	if err != nil {
		return nil, fmt.Errorf("%s: record of %s: %w", r.Ref, short(key), err)
	}
	var m cache.Meta
	if err := json.Unmarshal(cfg, &m); err != nil {
		return nil, fmt.Errorf("%s: record of %s: %w", r.Ref, short(key), err)
	}
	if m.Key != key {
		return nil, fmt.Errorf("%s: tag %s holds the record of another key (%s)", r.Ref, short(key), short(m.Key))
	}
	r.mu.Lock()
	r.found[key] = &found{manifest: man, meta: &m}
	r.mu.Unlock()
	return &m, nil
}

// fetch reads a small blob, checking its size and digest.
func (r *Remote) fetch(ctx context.Context, d ocispec.Descriptor) ([]byte, error) {
	rc, err := r.repo.Fetch(ctx, d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return content.ReadAll(rc, d)
}

// Pull downloads the entry of key (found by Lookup) into the local cache.
// Every layer is checked against its digest while it is written, and
// every payload file against the record: on a mismatch nothing is added
// and the error wraps cache.ErrCorrupt. It returns the bytes downloaded.
func (r *Remote) Pull(ctx context.Context, c *cache.Cache, key string) (int64, error) {
	r.mu.Lock()
	f := r.found[key]
	r.mu.Unlock()
	if f == nil {
		return 0, fmt.Errorf("%s: entry %s was not looked up", r.Ref, short(key))
	}
	layers := map[string]ocispec.Descriptor{}
	for _, l := range f.manifest.Layers {
		layers[l.Digest.String()] = l
	}
	m := *f.meta
	m.Files = nil
	w, err := c.Begin(m)
	if err != nil {
		return 0, err
	}
	defer w.Abort()
	var n int64
	for _, file := range f.meta.Files {
		if file.Dir {
			if err := w.AddDir(file.Name, os.FileMode(file.Mode)); err != nil {
				return n, err
			}
			continue
		}
		l, ok := layers["sha256:"+file.SHA256]
		if !ok || l.Size != file.Size {
			return n, fmt.Errorf("%w: %s: entry %s: no layer for %s (sha256 %s)", cache.ErrCorrupt, r.Ref, short(key), file.Name, short(file.SHA256))
		}
		got, err := r.pullFile(ctx, w, l, file)
		n += got
		if err != nil {
			return n, err
		}
	}
	cm, err := w.Commit()
	if err != nil {
		return n, err
	}
	// The writer hashed every file again: the entry is what the record says.
	if err := sameFiles(cm.Files, f.meta.Files); err != nil {
		_ = c.Drop(key)
		return n, fmt.Errorf("%w: %s: entry %s: %v", cache.ErrCorrupt, r.Ref, short(key), err)
	}
	return n, nil
}

func (r *Remote) pullFile(ctx context.Context, w *cache.Writer, l ocispec.Descriptor, file cache.File) (int64, error) {
	rc, err := r.repo.Fetch(ctx, l)
	if err != nil {
		return 0, fmt.Errorf("%s: %s: %w", r.Ref, file.Name, err)
	}
	defer rc.Close()
	out, err := w.Create(file.Name, os.FileMode(file.Mode))
	if err != nil {
		return 0, err
	}
	vr := content.NewVerifyReader(rc, l)
	n, err := io.Copy(out, vr)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("%s: %s: %w", r.Ref, file.Name, err)
	}
	if err := vr.Verify(); err != nil {
		return n, fmt.Errorf("%w: %s: layer %s (%s): %v", cache.ErrCorrupt, r.Ref, short(l.Digest.Encoded()), file.Name, err)
	}
	return n, nil
}

func sameFiles(got, want []cache.File) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d files, the record lists %d", len(got), len(want))
	}
	idx := map[string]cache.File{}
	for _, f := range got {
		idx[f.Name] = f
	}
	for _, f := range want {
		g, ok := idx[f.Name]
		if !ok || g.Dir != f.Dir || g.Size != f.Size || g.SHA256 != f.SHA256 {
			return fmt.Errorf("%s differs from the record", f.Name)
		}
	}
	return nil
}

// Has reports whether the registry holds the entry of key (its manifest).
func (r *Remote) Has(ctx context.Context, key string) (bool, error) {
	_, err := r.repo.Resolve(ctx, tag(key))
	if errors.Is(err, errdef.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s: %w", r.Ref, err)
	}
	return true, nil
}

// Push uploads a local entry: the layers the registry lacks, the record,
// then the manifest under the entry's tag. It returns the bytes uploaded.
func (r *Remote) Push(ctx context.Context, c *cache.Cache, m *cache.Meta) (int64, error) {
	record, err := os.ReadFile(c.Path(m.Key, "meta.json"))
	if err != nil {
		return 0, err
	}
	var n int64
	man := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: ArtifactType,
		Config:       content.NewDescriptorFromBytes(MediaTypeMeta, record),
		Layers:       []ocispec.Descriptor{},
		Annotations:  map[string]string{AnnotationStep: m.Step, AnnotationTitle: m.Title},
	}
	for _, f := range m.Files {
		if f.Dir {
			continue
		}
		d := ocispec.Descriptor{
			MediaType:   MediaTypeFile,
			Digest:      digest.NewDigestFromEncoded(digest.SHA256, f.SHA256),
			Size:        f.Size,
			Annotations: map[string]string{ocispec.AnnotationTitle: f.Name},
		}
		man.Layers = append(man.Layers, d)
		sent, err := r.pushBlob(ctx, d, func() (io.ReadCloser, error) { return os.Open(c.Path(m.Key, f.Name)) })
		n += sent
		if err != nil {
			return n, fmt.Errorf("%s: %s: %w", r.Ref, f.Name, err)
		}
	}
	sent, err := r.pushBlob(ctx, man.Config, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(record)), nil })
	n += sent
	if err != nil {
		return n, fmt.Errorf("%s: record: %w", r.Ref, err)
	}
	raw, err := json.Marshal(&man)
	if err != nil {
		return n, err
	}
	md := content.NewDescriptorFromBytes(ocispec.MediaTypeImageManifest, raw)
	if err := r.repo.PushReference(ctx, md, bytes.NewReader(raw), tag(m.Key)); err != nil {
		return n, fmt.Errorf("%s: manifest: %w", r.Ref, err)
	}
	return n + int64(len(raw)), nil
}

// pushBlob uploads a blob unless the registry has it.
func (r *Remote) pushBlob(ctx context.Context, d ocispec.Descriptor, open func() (io.ReadCloser, error)) (int64, error) {
	ok, err := r.repo.Exists(ctx, d)
	if err != nil {
		return 0, err
	}
	if ok {
		return 0, nil
	}
	rc, err := open()
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	if err := r.repo.Push(ctx, d, rc); err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
		return 0, err
	}
	return d.Size, nil
}

// Shareable says, by cache key (of the steps and of the points inside
// them), whether an entry may be pushed: not when its step sees a secret,
// nor when its key chains to one that does (the state before it, the
// final state of an output, an output it reads); unless sharedKey: the
// secrets' digests are then under a key the fleet shares
// (cache.ShareSecretKey), and every entry may be pushed.
func Shareable(keys []cache.Key, sharedKey bool) map[string]bool {
	tainted := map[string]bool{}
	check := func(key string, inputs []string) {
		if sharedKey {
			tainted[key] = false
			return
		}
		t := false
		for _, l := range inputs {
			label, rest, _ := strings.Cut(l, " ")
			switch label {
			case "secret":
				t = true
			case "prev", "state", "dep":
				t = t || tainted[rest]
			}
		}
		tainted[key] = t
	}
	// States chain in plan order; outputs hang off the final state.
	for _, state := range []bool{true, false} {
		for _, k := range keys {
			if k.State != state {
				continue
			}
			check(k.Key, k.Inputs)
			for _, pt := range k.Points {
				check(pt.Key, pt.Inputs)
			}
		}
	}
	out := make(map[string]bool, len(tainted))
	for k, t := range tainted {
		out[k] = !t
	}
	return out
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
