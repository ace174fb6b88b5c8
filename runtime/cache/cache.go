// Package cache is dib's build cache: the plan's steps, keyed by content,
// with what they left behind.
//
// Every step that succeeds leaves an entry under its cache key (see Keys):
// a small record (meta.json) and, for the plan's snapshot points, a
// snapshot of the build's state (the tree and the hook tree), or, for
// steps that write outputs, the files they wrote. `dib apply` finds the
// longest prefix of the plan whose state is cached, restores it and runs
// only the rest; outputs whose entries are cached are restored, not
// rebuilt.
//
// Layout of a cache directory (0700, root's):
//
//	lock              flock(2): shared by applies, exclusive for prune/verify
//	hmac.key          32 random bytes (0600): keys the digest of secret values
//	entries/KEY/      one entry: meta.json plus its payload files
//	tmp/              entries being written; never read
//	placed/           stamps of outputs restored to an output directory
//
// An entry is written under tmp/, every file fsynced, then renamed into
// entries/ in one step: a build killed while writing (even by SIGKILL)
// leaves only a directory under tmp/, which nothing reads and the next
// Open removes. meta.json lists the size and sha256 of every payload file;
// an entry whose files do not match is reported, dropped and rebuilt.
//
// Snapshot mechanism, chosen by measurement (see snapshot.go).
package cache

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultMaxAge is how long results of steps that talk to a package mirror
// are reused (cache.max-age in the Dibfile; `dib apply --refresh` ignores
// them).
const DefaultMaxAge = 7 * 24 * time.Hour

// Cache is an open cache directory.
type Cache struct {
	Dir string
	// Owner, when set, is in the name of every directory this Cache
	// makes under tmp/ (OWNER-*): a build records TmpPattern(id) in its
	// ledger, so that `dib clean` removes what it was writing when it was
	// killed without waiting for an exclusive lock of the cache.
	Owner string
	// Record, when set, is called with the path of every file this Cache
	// writes outside tmp/ and entries/ (the stamps of placed outputs)
	// before writing it, for the build's ledger: the stamp of an output a
	// killed build wrote goes with the output.
	Record func(path string) error
	key    []byte
	// shared is set when key is a fleet's (ShareSecretKey).
	shared bool
	lock   *os.File
	// exclusive: lock is held exclusively (its file names the holder).
	exclusive bool
}

// Meta is the record of one entry.
type Meta struct {
	Key   string `json:"key"`
	Step  string `json:"step"` // plan step ID
	Kind  string `json:"kind"`
	Title string `json:"title"`
	Image string `json:"image"`
	Index int    `json:"index"` // 1-based position in its plan
	// Created is when the entry was written; MirrorTime the oldest time a
	// step of its history (this one or one before it) read a package
	// mirror (zero: none did). Entries whose MirrorTime is older than the
	// max age are not reused.
	Created time.Time `json:"created"`
	// Seconds is how long the step ran when it was built: what its next
	// run is expected to take (the progress view shows it).
	Seconds    float64   `json:"seconds,omitempty"`
	MirrorTime time.Time `json:"mirror_time,omitempty"`
	// Inputs are the labelled lines hashed into Key (secret values appear
	// only as keyed digests).
	Inputs []string `json:"inputs"`
	// StepInputs are the lines hashed into the plan step's ID (`dib plan
	// --explain`), kept to name what changed when a step runs again.
	StepInputs []string `json:"step_inputs,omitempty"`
	Files      []File   `json:"files,omitempty"`
	// Snapshot describes the state the entry holds, for snapshot points.
	Snapshot *Snapshot `json:"snapshot,omitempty"`
	// Outputs are the paths (relative to the output directory) the step
	// wrote; their content is in the payload file OutputsPayload names:
	// "outputs.tar" (OutputsArchive; "outputs.tar.zst" in entries of
	// older versions), or for one file kept as it is "output"
	// (OutputPayload).
	Outputs []string `json:"outputs,omitempty"`
	// Stored, when set, names each output (same order as Outputs) inside
	// the outputs archive where that is not its path: the raw output's
	// payload is the disk snapshot's (Writer.Link), which holds the
	// image under the build's name for it.
	Stored []string `json:"stored,omitempty"`
	// Packages, for a step that talks to a package mirror, are the
	// packages it installed or upgraded ("name=version", sorted): what the
	// archive's state was when the entry was made (cache.max-age bounds
	// how long that state is reused).
	Packages []string `json:"packages,omitempty"`
	// Incomplete is set when some output of the step could not be kept
	// (written outside the output directory): the entry then only
	// records that the step ran.
	Incomplete bool `json:"incomplete,omitempty"`
}

// File is one payload file of an entry.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Mode   uint32 `json:"mode,omitempty"`
	Dir    bool   `json:"dir,omitempty"`
}

// Snapshot is the build state a snapshot entry restores.
type Snapshot struct {
	// Tree is the tree's directory relative to the build directory
	// (TMP_BUILD_DIR), e.g. "built" or "mnt".
	Tree string `json:"tree"`
	// Hooks is set when the hook tree is in the entry.
	Hooks bool `json:"hooks"`
	// Finalised is set when DIB's finalise_base already ran on the tree.
	Finalised bool `json:"finalised,omitempty"`
	// Parent is the key of the snapshot entry this entry's tree archive
	// is a layer on (layer.go): only what changed since that state, with
	// whiteouts for what was removed. Empty: the whole tree. An entry is
	// usable only with its whole chain of parents (Cache.Chain); moving
	// entries between caches moves chains.
	Parent string `json:"parent,omitempty"`
	// Scripts, for a snapshot taken inside a phase step, is how many of
	// the step's scripts had run (the key is then the step's Points
	// key); zero for the state after the whole step.
	Scripts int `json:"scripts,omitempty"`
	// Disk, when set, says the state is an assembled disk image, not a
	// tree: the payload file "disk.tar.zst" holds the image file named
	// Disk (the final state of a disk build, whose outputs are made from
	// the image). Tree and Hooks are then empty.
	Disk string `json:"disk,omitempty"`
}

// Archive names the entry's payload archive base ("tree", "hooks",
// "outputs", "disk"): BASE.tar, or BASE.tar.zst when the entry keeps it
// compressed (entries of older versions).
func (m *Meta) Archive(base string) string {
	for _, f := range m.Files {
		if f.Name == base+".tar" {
			return f.Name
		}
	}
	return base + ".tar.zst"
}

// Payload returns the record of payload file name (not a directory), or
// nil.
func (m *Meta) Payload(name string) *File {
	for i := range m.Files {
		if m.Files[i].Name == name && !m.Files[i].Dir {
			return &m.Files[i]
		}
	}
	return nil
}

// OutputsPayload is the payload file holding the entry's outputs: the one
// output as it is (OutputPayload) or the outputs archive.
func (m *Meta) OutputsPayload() string {
	if m.Payload(OutputPayload) != nil && len(m.Outputs) == 1 {
		return OutputPayload
	}
	return m.Archive("outputs")
}

// Size is the total size of the entry's payload.
func (m *Meta) Size() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// Open opens (creating) a cache directory. It does not lock; call Lock
// before using entries.
func Open(dir string) (*Cache, error) { return OpenOwned(dir, "") }

// OpenOwned is Open for a Cache whose Owner is owner, set before the
// cache's key is first made: the key's temporary file is under tmp/ with
// the owner's prefix too, so a build killed while making it leaves nothing
// that `dib clean` does not remove.
func OpenOwned(dir, owner string) (*Cache, error) {
	if dir == "" {
		return nil, errors.New("no cache directory")
	}
	for _, d := range []string{dir, filepath.Join(dir, "entries"), filepath.Join(dir, "tmp"), filepath.Join(dir, "placed")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	c := &Cache{Dir: dir, Owner: owner}
	key, err := c.loadKey()
	if err != nil {
		return nil, err
	}
	c.key = key
	return c, nil
}

// loadKey reads the cache's HMAC key, creating it (32 random bytes, 0600)
// on first use. The key is written under tmp/ and linked into place, so a
// writer killed half-way leaves only what tmp/ is cleared of.
func (c *Cache) loadKey() ([]byte, error) {
	for try := 0; ; try++ {
		key, err := c.makeKey()
		// An exclusive locker clearing tmp/ removed the file between its
		// creation and its link: make it again.
		if errors.Is(err, fs.ErrNotExist) && try < 3 {
			continue
		}
		return key, err
	}
}

func (c *Cache) makeKey() ([]byte, error) {
	name := filepath.Join(c.Dir, "hmac.key")
	b, err := os.ReadFile(name)
	if err == nil && len(b) == 32 {
		return b, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	tmp, err := c.keyTemp(key)
	defer os.Remove(tmp)
	if err != nil {
		return nil, err
	}
	// link(2) publishes the key only if no other process did first.
	if err := os.Link(tmp, name); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return c.makeKey()
		}
		return nil, err
	}
	return key, syncDir(filepath.Dir(name))
}

// keyTemp writes key, fsynced, to a new file under tmp/ named with the
// Cache's owner and returns its path ("" if none was made).
func (c *Cache) keyTemp(key []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Join(c.Dir, "tmp"), c.tmpPrefix("hmac.key."))
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	f.Close()
	return tmp, writeSync(tmp, key, 0o600)
}

// MinSharedKey is the shortest key ShareSecretKey accepts.
const MinSharedKey = 32

// ShareSecretKey makes the digests of secret values use key, a key shared
// by the machines of one fleet, instead of this cache's own (hmac.key):
// they then compute the same keys for steps that see a secret, and such
// entries may be shared through a registry (runtime/cache/remote). Whoever
// holds the key and can read the registry can test guesses of the secret,
// as whoever can read the entries can read what the secret became in the
// image: give both only to those who may know the secret.
func (c *Cache) ShareSecretKey(key []byte) error {
	if len(key) < MinSharedKey {
		return fmt.Errorf("the shared secret key has %d bytes; it needs at least %d (e.g. head -c 32 /dev/urandom | base64)", len(key), MinSharedKey)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("dib-cache-shared-key-v1"))
	c.key, c.shared = m.Sum(nil), true
	return nil
}

// SharedSecretKey reports whether ShareSecretKey was called.
func (c *Cache) SharedSecretKey() bool { return c.shared }

// SecretDigest is what a cache key holds for a secret value: an HMAC keyed
// by this cache's random key. Without the key file (0600, in the cache
// directory) the digest cannot be used to test a guess.
func (c *Cache) SecretDigest(name, value string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("dib-cache-secret-v1\x00" + name + "\x00" + value))
	return hex.EncodeToString(m.Sum(nil))
}

// Lock takes the cache's exclusive lock, for what changes the cache as a
// whole (`dib cache prune`, `verify`): no apply runs meanwhile. When
// another process holds the lock, wait is called once (to say so) and Lock
// waits until it is free or ctx ends.
func (c *Cache) Lock(ctx context.Context, wait func(holder string)) error {
	return c.lockAs(ctx, false, wait)
}

// LockShared takes the cache's lock shared, as every apply does: applies
// (in one process or several) use the cache at the same time, and only an
// exclusive holder waits for them or makes them wait. That is safe because
// an entry is only ever added whole (written under tmp/, renamed into
// entries/ in one step; the same key twice keeps the first) or dropped
// whole (renamed away first), so a reader never sees a half entry. What
// tmp/ holds is removed only by a holder that could lock it exclusively:
// then no writer is running.
func (c *Cache) LockShared(ctx context.Context, wait func(holder string)) error {
	return c.lockAs(ctx, true, wait)
}

func (c *Cache) lockAs(ctx context.Context, shared bool, wait func(holder string)) error {
	if c.lock != nil {
		return errors.New("the cache is already locked by this Cache")
	}
	f, err := os.OpenFile(filepath.Join(c.Dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	how := unix.LOCK_EX
	if shared {
		how = unix.LOCK_SH
	}
	told := false
	exclusive := false
	start := time.Now()
	for {
		// Alone (an exclusive lock granted at once): tmp/ holds only what
		// interrupted writers left, removed below before a shared lock
		// takes its place.
		if shared && !told && unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			exclusive = true
			break
		}
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			exclusive = !shared
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return fmt.Errorf("locking the cache: %w", err)
		}
		// Another apply holds the lock exclusively for a moment while it
		// clears tmp/ (above): an apply tells of its wait only when the
		// lock is still unavailable after waitGrace (prune, verify hold it).
		if !told && wait != nil && (!shared || time.Since(start) >= waitGrace) {
			holder, _ := os.ReadFile(f.Name())
			h := strings.TrimSpace(string(holder))
			if h == "" {
				h = "one or more dib apply"
			}
			wait(h)
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return ctx.Err()
		case <-time.After(pollEvery(time.Since(start))):
		}
	}
	c.lock = f
	c.exclusive = exclusive && !shared
	if !exclusive {
		return nil
	}
	// Under an exclusive lock nobody is writing: what tmp/ holds was
	// interrupted.
	ents, _ := os.ReadDir(filepath.Join(c.Dir, "tmp"))
	for _, e := range ents {
		os.RemoveAll(filepath.Join(c.Dir, "tmp", e.Name()))
	}
	if shared {
		// Converting to shared is not atomic (flock(2)): an exclusive
		// locker may come in between, which only delays this apply.
		_ = f.Truncate(0)
		if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
			c.lock = nil
			f.Close()
			return fmt.Errorf("locking the cache: %w", err)
		}
		return nil
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte("pid "+strconv.Itoa(os.Getpid())+"\n"), 0)
	return nil
}

// waitGrace is how long the lock may be unavailable to an apply before it
// is told it waits: longer than another apply's exclusive moment.
const waitGrace = 300 * time.Millisecond

// pollEvery is the pause between attempts to lock, short during waitGrace.
func pollEvery(waited time.Duration) time.Duration {
	if waited < waitGrace {
		return 20 * time.Millisecond
	}
	return 200 * time.Millisecond
}

// Unlock releases the lock.
func (c *Cache) Unlock() error {
	if c.lock == nil {
		return nil
	}
	f := c.lock
	c.lock = nil
	if c.exclusive {
		_ = f.Truncate(0)
	}
	return f.Close() // closing the descriptor releases the flock
}

func (c *Cache) entryDir(key string) string { return filepath.Join(c.Dir, "entries", key) }

// ErrCorrupt marks an entry whose files do not match its record.
var ErrCorrupt = errors.New("cache entry is corrupt")

// Get returns the record of the entry with the given key, or nil when
// there is none. It does not check the payload (see Verify).
func (c *Cache) Get(key string) (*Meta, error) {
	if !validKey(key) {
		return nil, fmt.Errorf("bad cache key %q", key)
	}
	b, err := os.ReadFile(filepath.Join(c.entryDir(key), "meta.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil || m.Key != key {
		return nil, fmt.Errorf("%w: %s: unreadable record", ErrCorrupt, key)
	}
	return &m, nil
}

func validKey(k string) bool {
	if len(k) != 64 {
		return false
	}
	_, err := hex.DecodeString(k)
	return err == nil
}

// Path returns the path of a payload file of an entry.
func (c *Cache) Path(key, name string) string {
	return filepath.Join(c.entryDir(key), filepath.FromSlash(name))
}

// Verify recomputes the digest of every payload file of an entry.
func (c *Cache) Verify(m *Meta) error {
	for _, f := range m.Files {
		if f.Dir {
			continue
		}
		got, n, err := hashFile(c.Path(m.Key, f.Name))
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, f.Name, err)
		}
		if n != f.Size || got != f.SHA256 {
			return fmt.Errorf("%w: %s: sha256 %s, recorded %s", ErrCorrupt, f.Name, short(got), short(f.SHA256))
		}
	}
	return nil
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// Drop removes an entry.
func (c *Cache) Drop(key string) error {
	if !validKey(key) {
		return fmt.Errorf("bad cache key %q", key)
	}
	// Rename first, so a half-removed entry is never seen as one.
	tmp, err := os.MkdirTemp(filepath.Join(c.Dir, "tmp"), c.tmpPrefix("drop-"))
	if err != nil {
		return err
	}
	if err := os.Rename(c.entryDir(key), filepath.Join(tmp, "e")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.RemoveAll(tmp)
}

// List returns every entry's record, oldest first.
func (c *Cache) List() ([]*Meta, error) {
	ents, err := os.ReadDir(filepath.Join(c.Dir, "entries"))
	if err != nil {
		return nil, err
	}
	var out []*Meta
	for _, e := range ents {
		m, err := c.Get(e.Name())
		if err != nil || m == nil {
			// An unreadable record: list it so verify/prune can drop it.
			out = append(out, &Meta{Key: e.Name(), Title: "(unreadable entry)"})
			continue
		}
		out = append(out, m)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// Writer writes one entry under tmp/ until Commit.
type Writer struct {
	c    *Cache
	dir  string
	meta Meta
	done bool
	// published is set when Commit renamed this entry into entries/ (not
	// when another build's entry of the same key was there first).
	published bool
}

// Published reports whether Commit published this writer's entry: not
// when it failed, nor when an entry of the same key written by another
// build was there first and was kept.
func (w *Writer) Published() bool { return w.published }

// tmpPrefix is the name prefix of a directory under tmp/.
func (c *Cache) tmpPrefix(p string) string {
	if c.Owner == "" {
		return p
	}
	return c.Owner + "-" + p
}

// TmpPattern is the glob pattern, in the cache's tmp/ directory, of the
// directories a Cache whose Owner is owner makes there.
func TmpPattern(owner string) string { return owner + "-*" }

// Begin starts writing the entry of m.Key.
func (c *Cache) Begin(m Meta) (*Writer, error) {
	if !validKey(m.Key) {
		return nil, fmt.Errorf("bad cache key %q", m.Key)
	}
	dir, err := os.MkdirTemp(filepath.Join(c.Dir, "tmp"), c.tmpPrefix(m.Key[:16]+"."))
	if err != nil {
		return nil, err
	}
	return &Writer{c: c, dir: dir, meta: m}, nil
}

// Create adds a payload file, restored later with mode; the returned
// writer hashes what is written and fsyncs the file on Close.
func (w *Writer) Create(name string, mode fs.FileMode) (io.WriteCloser, error) {
	full := filepath.Join(w.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
		return nil, err
	}
	f, err := createPayload(full)
	if err != nil {
		return nil, err
	}
	return &fileWriter{w: w, f: f, name: name, mode: uint32(mode.Perm())}, nil
}

// AddDir records a directory of the payload (restored with its mode).
func (w *Writer) AddDir(name string, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Join(w.dir, filepath.FromSlash(name)), 0o700); err != nil {
		return err
	}
	w.meta.Files = append(w.meta.Files, File{Name: name, Dir: true, Mode: uint32(mode.Perm())})
	return nil
}

// fileWriter is a payload file being written (payloadFile hashes it).
type fileWriter struct {
	w    *Writer
	f    *payloadFile
	name string
	mode uint32
}

func (f *fileWriter) Write(p []byte) (int, error) { return f.f.Write(p) }

func (f *fileWriter) Close() error {
	if err := f.f.Sync(); err != nil {
		f.f.Close()
		return err
	}
	if err := f.f.Close(); err != nil {
		return err
	}
	f.w.meta.Files = append(f.w.meta.Files, File{Name: f.name, Size: f.f.Size(), SHA256: f.f.Sum(), Mode: f.mode})
	return nil
}

// Commit writes the record and publishes the entry atomically. An entry
// already present under the key is kept (same key, same content).
func (w *Writer) Commit() (*Meta, error) {
	if w.done {
		return nil, errors.New("entry already committed or aborted")
	}
	w.done = true
	m := w.meta
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Name < m.Files[j].Name })
	if m.Created.IsZero() {
		m.Created = time.Now().UTC()
	}
	b, err := json.MarshalIndent(&m, "", "  ")
	if err != nil {
		os.RemoveAll(w.dir)
		return nil, err
	}
	if err := writeSync(filepath.Join(w.dir, "meta.json"), append(b, '\n'), 0o600); err != nil {
		os.RemoveAll(w.dir)
		return nil, err
	}
	if err := syncTree(w.dir); err != nil {
		os.RemoveAll(w.dir)
		return nil, err
	}
	dst := w.c.entryDir(m.Key)
	if err := os.Rename(w.dir, dst); err != nil {
		os.RemoveAll(w.dir)
		if _, serr := os.Stat(filepath.Join(dst, "meta.json")); serr == nil {
			return &m, nil
		}
		// A leftover without a record (cannot happen through Commit): replace it.
		if rerr := w.c.Drop(m.Key); rerr != nil {
			return nil, err
		}
		return nil, err
	}
	w.published = true
	return &m, syncDir(filepath.Dir(dst))
}

// Abort discards the entry being written.
func (w *Writer) Abort() {
	if !w.done {
		w.done = true
		os.RemoveAll(w.dir)
	}
}

func writeSync(name string, data []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// syncTree fsyncs every directory of an entry (files were synced when
// closed).
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return syncDir(p)
		}
		return nil
	})
}

func hashFile(name string) (string, int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// SetSnapshot marks the entry as a snapshot of the state it describes.
func (w *Writer) SetSnapshot(s Snapshot) { w.meta.Snapshot = &s }

// SetOutputs records the output paths the entry's outputs archive holds.
func (w *Writer) SetOutputs(rels []string) { w.meta.Outputs = append([]string(nil), rels...) }

// SetStored records the names the outputs have inside the outputs archive
// (Meta.Stored), when not their paths.
func (w *Writer) SetStored(names []string) { w.meta.Stored = append([]string(nil), names...) }

// Link adds payload file name as a hard link to payload file from of
// entry src, a published (so immutable) entry of this cache: the same
// content under two keys, written once. Where the link cannot be made,
// the file is copied. The record is src's, checked again on every read.
func (w *Writer) Link(name string, src *Meta, from string) error {
	rec := src.Payload(from)
	if rec == nil {
		return fmt.Errorf("cache entry %s has no payload %s", short(src.Key), from)
	}
	full := filepath.Join(w.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
		return err
	}
	if err := os.Link(w.c.Path(src.Key, from), full); err != nil {
		in, err := os.Open(w.c.Path(src.Key, from))
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := w.Create(name, fs.FileMode(rec.Mode))
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	}
	f := *rec
	f.Name = name
	w.meta.Files = append(w.meta.Files, f)
	return nil
}

// SetPackages records the packages the step installed (see Meta.Packages).
func (w *Writer) SetPackages(p []string) { w.meta.Packages = append([]string(nil), p...) }

// Installed lists, as sorted "name=version", the packages of after that
// before does not have at that version.
func Installed(before, after map[string]string) []string {
	var out []string
	for name, v := range after {
		if before[name] != v {
			out = append(out, name+"="+v)
		}
	}
	sort.Strings(out)
	return out
}

// SetIncomplete marks an entry whose outputs could not all be kept.
func (w *Writer) SetIncomplete() { w.meta.Incomplete = true }

// OpenExisting opens a cache directory for reading (`dib plan`): it
// creates nothing, takes no lock and returns nil when there is no cache.
func OpenExisting(dir string) (*Cache, error) {
	if dir == "" {
		return nil, nil
	}
	if _, err := os.Stat(filepath.Join(dir, "entries")); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	key, err := os.ReadFile(filepath.Join(dir, "hmac.key"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &Cache{Dir: dir, key: key}, nil
}

// Empty is a cache at dir that holds nothing and creates nothing (no
// directory, no key): what `dib plan` decides with before the first build,
// when entries may come from a registry. Its digests of secret values are
// keyed by nothing, so they match no real cache's, unless ShareSecretKey
// gives it the fleet's key.
func Empty(dir string) *Cache { return &Cache{Dir: dir} }

// Used records that an entry served a build: Prune drops the least
// recently used entries first. (The record's modification time is the
// entry's last use.)
func (c *Cache) Used(key string) {
	if validKey(key) {
		now := time.Now()
		_ = os.Chtimes(filepath.Join(c.entryDir(key), "meta.json"), now, now)
	}
}

// LastUsed is when an entry last served a build (or was written).
func (c *Cache) LastUsed(key string) time.Time {
	fi, err := os.Stat(filepath.Join(c.entryDir(key), "meta.json"))
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// Prune removes entries unused for longer than olderThan (0: no limit),
// then the least recently used until the payload of what remains is at
// most maxSize bytes (0: no limit), unreadable entries, and the layers
// whose parent is gone. It returns what it removed. Hold the lock.
func (c *Cache) Prune(maxSize int64, olderThan time.Duration, now time.Time) ([]*Meta, error) {
	list, err := c.List()
	if err != nil {
		return nil, err
	}
	sort.SliceStable(list, func(i, j int) bool { return c.LastUsed(list[i].Key).Before(c.LastUsed(list[j].Key)) })
	var total int64
	for _, m := range list {
		total += m.Size()
	}
	var removed []*Meta
	for _, m := range list {
		old := olderThan > 0 && now.Sub(c.LastUsed(m.Key)) > olderThan
		big := maxSize > 0 && total > maxSize
		unreadable := m.Step == ""
		if !old && !big && !unreadable {
			continue
		}
		if err := c.Drop(m.Key); err != nil {
			return removed, err
		}
		total -= m.Size()
		removed = append(removed, m)
	}
	// Layers whose parent is gone cannot be restored: they go too.
	for {
		list, err := c.List()
		if err != nil {
			return removed, err
		}
		n := len(removed)
		for _, m := range list {
			if m.Snapshot == nil || m.Snapshot.Parent == "" {
				continue
			}
			if p, _ := c.Get(m.Snapshot.Parent); p == nil {
				if err := c.Drop(m.Key); err != nil {
					return removed, err
				}
				removed = append(removed, m)
			}
		}
		if len(removed) == n {
			break
		}
	}
	// Stamps of outputs whose entries are gone are of no use.
	ents, _ := os.ReadDir(filepath.Join(c.Dir, "placed"))
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(c.Dir, "placed", e.Name()))
		var pl placed
		if err != nil || json.Unmarshal(b, &pl) != nil || !validKey(pl.Key) {
			os.Remove(filepath.Join(c.Dir, "placed", e.Name()))
			continue
		}
		if _, err := os.Stat(c.entryDir(pl.Key)); err != nil {
			os.Remove(filepath.Join(c.Dir, "placed", e.Name()))
		}
	}
	return removed, nil
}
