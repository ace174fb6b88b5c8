package cache

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// How a snapshot is kept: a PAX tar stream of the tree (archive.go),
// compressed with zstd at its fastest level on both cores, in one file of
// the entry. Measured with BenchmarkSnapshot on this project's build
// machine (2 cores, shared with other builds; cache on ext4 on a virtio
// disk, tree on tmpfs) on the Debian VM example's tree (872 MB, 21,216
// entries), save including fsync:
//
//	mechanism                          save    restore  size in cache
//	Go tar + zstd fastest (this)       6.0 s   3.3 s    288 MB
//	GNU tar | zstd -1 -T2 (processes)  4.4 s   2.4 s    302 MB
//	cp -a --reflink=auto (a copy)      2.7 s   1.7 s    885 MB
//
// The copy is fastest but takes three times the disk per snapshot and,
// like GNU tar, leaves the exactness of owners, xattrs, devices and holes
// to another program's flags; the Go stream is ours, tested property by
// property (archive_test.go), verified by digest as it is read, and the
// same format holds the outputs.
//
// Only a build's first snapshot holds the whole tree; every later one is
// a layer (layer.go): the entries whose inode or ctime changed since the
// build's previous snapshot, and whiteouts for what went. The layers of
// one build add up to about one whole snapshot of the final tree (plus
// files rewritten by several steps), whatever the number of points, and a
// point whose step changed little costs a scan of the tree (21k lstat, a
// few tens of ms) and the hook tree. That is what lets the compiler put a
// point after every tree-changing step (compiler.markCachePoints); with
// whole snapshots the VM example's seven points would cost about 6 s each.
// Measured in one run of bench/rebuild.sh: see the notes of issue 13.
//
// Writing a snapshot in the background while the next step runs was
// considered and not done: the next step changes the tree being read, so
// the layer would need a frozen copy first (a copy in tmpfs costs about
// what compressing the changed files does, measured above as cp -a) or a
// validation that aborts when a file changed under the reader (dpkg in
// the next phase rewrites most of /var/lib/dpkg at once, so the most
// useful points would be the ones lost); and on two cores the compressor
// would compete with the step for the CPU anyway.
//
// Alternatives considered:
//   - reflinks (cp --reflink): the cache and the build directory are on
//     different filesystems (tmpfs and ext4), and ext4 has no reflinks: it
//     degrades to a full copy, which is the "cp -a" row.
//   - overlayfs layers per step: a snapshot would cost only the step's
//     delta too, but the tree would have to live on an overlay mount for
//     the whole build (mke2fs -d, the chroot's bind mounts and the
//     runtime's move of the tree all see it), and overlayfs changes what
//     the scripts see: copy-up breaks hard links without index=on,
//     renaming a directory of a lower layer fails with EXDEV without
//     redirect_dir, inode numbers change. The ctime scan gets the same
//     delta from the plain tree.
//   - GNU tar | zstd: the same format family, but two more processes and
//     GNU tar's own rules for xattrs and sparse files; the Go writer is
//     tested here property by property.
const snapshotLevel = zstd.SpeedFastest

// DiskArchive is the payload of a disk snapshot (Snapshot.Disk): the
// finished image file in a plain tar stream, holes skipped, not
// compressed. Measured with BenchmarkDiskSnapshot on the Debian VM
// example's image (4 GiB, 1.08 GB of data; the machine loaded by other
// builds, 2 December 2026):
//
//	payload         save (fsync)  restore  size in cache
//	disk.tar.zst    9.6 s         4.1 s    324 MB
//	disk.tar        4.4 s         3.1 s    1084 MB
//
// The image is written by every build that changes the tree (a cold
// build, an edited script), where the cache must cost least, so it is
// kept plain: 3.3 times the disk of the compressed image (760 MB more per
// disk build; the raw output's entry shares the payload, Writer.Link) for
// half the time. `dib cache prune --max-size` bounds the disk.
const DiskArchive = "disk.tar"

// AddTree stores the tree at dir as payload file name (tar, zstd).
func (w *Writer) AddTree(name, dir string) error {
	return w.addArchive(name, func(tw io.Writer) error { return WriteTree(tw, dir) })
}

// AddPaths stores the files and directories rels (relative to root) as
// payload file name, with the directories leading to them.
func (w *Writer) AddPaths(name, root string, rels []string) error {
	return w.addArchive(name, func(tw io.Writer) error { return WritePaths(tw, root, rels) })
}

// addArchive writes a payload archive: zstd-compressed when its name ends
// in ".zst", else a plain tar stream (Extract reads either, by the name).
func (w *Writer) addArchive(name string, write func(io.Writer) error) error {
	f, err := w.Create(name, 0o600)
	if err != nil {
		return err
	}
	if !strings.HasSuffix(name, ".zst") {
		bw := bufio.NewWriterSize(f, 1<<20)
		if err := write(bw); err != nil {
			f.Close()
			return err
		}
		if err := bw.Flush(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	zw, err := zstd.NewWriter(f, zstd.WithEncoderLevel(snapshotLevel), zstd.WithEncoderConcurrency(2))
	if err != nil {
		f.Close()
		return err
	}
	if err := write(zw); err != nil {
		zw.Close()
		f.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Extract restores payload file name of entry m into dir, an existing
// empty directory. The payload's sha256 is checked as it is read; on a
// mismatch (or a stream zstd rejects) the error wraps ErrCorrupt and dir
// holds a partial tree the caller must remove.
func (c *Cache) Extract(m *Meta, name, dir string) error {
	return c.extract(m, name, dir, false)
}

func (c *Cache) extract(m *Meta, name, dir string, layer bool) error {
	var want *File
	for i := range m.Files {
		if m.Files[i].Name == name {
			want = &m.Files[i]
		}
	}
	if want == nil {
		return fmt.Errorf("%w: %s has no %s", ErrCorrupt, short(m.Key), name)
	}
	f, err := os.Open(c.Path(m.Key, name))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	defer f.Close()
	h := sha256.New()
	var r io.Reader = bufio.NewReaderSize(io.TeeReader(f, h), 1<<20)
	if strings.HasSuffix(name, ".zst") {
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(2))
		if err != nil {
			return err
		}
		defer zr.Close()
		r = zr
	}
	xerr := extract(r, dir, layer)
	// Hash what is left (tar's padding, the zstd frame's end).
	if _, err := io.Copy(io.Discard, r); err != nil && xerr == nil {
		xerr = err
	}
	if _, err := io.Copy(h, f); err != nil && xerr == nil {
		xerr = err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.SHA256 {
		return fmt.Errorf("%w: %s of %s: sha256 %s, recorded %s", ErrCorrupt, name, short(m.Key), short(got), short(want.SHA256))
	}
	if xerr != nil {
		// The payload is what was recorded, yet unreadable: not trusted either.
		return fmt.Errorf("%w: %s of %s: %v", ErrCorrupt, name, short(m.Key), xerr)
	}
	return nil
}

// WritePaths writes the given paths under root (files, or directories with
// their content) as one tar stream, with their parent directories first.
func WritePaths(w io.Writer, root string, rels []string) error {
	var st unix.Stat_t
	if err := unix.Lstat(root, &st); err != nil {
		return err
	}
	tw := newTarWriter(w, root, st.Dev)
	seen := map[string]bool{".": true}
	sorted := append([]string(nil), rels...)
	sort.Strings(sorted)
	for _, rel := range sorted {
		rel = path.Clean(strings.TrimPrefix(filepath.ToSlash(rel), "/"))
		if rel == "." || strings.HasPrefix(rel, "../") || rel == ".." {
			return fmt.Errorf("path %q is not inside %s", rel, root)
		}
		var parents []string
		for d := path.Dir(rel); d != "."; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range append(parents, rel) {
			if seen[d] {
				continue
			}
			seen[d] = true
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(root, d), &st); err != nil {
				return err
			}
			if err := tw.entry(d, &st); err != nil {
				return err
			}
			if d == rel && st.Mode&unix.S_IFMT == unix.S_IFDIR && !tw.mounts[d] {
				if err := tw.dir(d); err != nil {
					return err
				}
			}
		}
	}
	return tw.tw.Close()
}

// Chain returns the snapshot entries whose trees make the state of m, the
// whole tree first and m last (see Snapshot.Parent). An entry of the
// chain missing from the cache, or in exclude, makes it unusable.
func (c *Cache) Chain(m *Meta, exclude map[string]bool) ([]*Meta, error) {
	return c.chain(m, exclude, nil)
}

// chain is Chain, finding parents the cache lacks with lookup (when not
// nil; DecideOptions.Lookup).
func (c *Cache) chain(m *Meta, exclude map[string]bool, lookup func(string) *Meta) ([]*Meta, error) {
	chain := []*Meta{m}
	for cur := m; cur.Snapshot != nil && cur.Snapshot.Parent != ""; {
		if len(chain) > 1000 {
			return nil, fmt.Errorf("%w: %s: a snapshot chain without end", ErrCorrupt, short(m.Key))
		}
		key := cur.Snapshot.Parent
		if exclude[key] {
			return nil, fmt.Errorf("snapshot %s is a layer on %s, which was dropped", short(m.Key), short(key))
		}
		p, err := c.Get(key)
		if err != nil {
			return nil, err
		}
		if p == nil && lookup != nil {
			p = lookup(key)
		}
		if p == nil || p.Snapshot == nil {
			return nil, fmt.Errorf("snapshot %s is a layer on %s, which is not in the cache", short(m.Key), short(key))
		}
		chain = append([]*Meta{p}, chain...)
		cur = p
	}
	if m.Snapshot == nil {
		return nil, fmt.Errorf("entry %s holds no snapshot", short(m.Key))
	}
	return chain, nil
}

// RestoreTree extracts the tree of snapshot entry m (its chain's whole
// tree, then each layer) into dir, an existing empty directory. A corrupt
// entry of the chain gives an error wrapping *CorruptError naming it.
func (c *Cache) RestoreTree(m *Meta, dir string) error {
	chain, err := c.Chain(m, nil)
	if err != nil {
		return err
	}
	for i, e := range chain {
		if err := c.extract(e, "tree.tar.zst", dir, i > 0); err != nil {
			if errors.Is(err, ErrCorrupt) {
				return &CorruptError{Entry: e, Err: err}
			}
			return err
		}
	}
	return nil
}

// CorruptError names the entry of a snapshot chain found corrupt.
type CorruptError struct {
	Entry *Meta
	Err   error
}

func (e *CorruptError) Error() string { return e.Err.Error() }

func (e *CorruptError) Unwrap() error { return e.Err }
