package cache

import (
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

// How a snapshot is kept: a PAX tar stream of the tree (archive.go), not
// compressed, in one file of the entry (TreeArchive, with the hook tree
// as HooksArchive and a step's outputs as OutputsArchive). The first
// measurement (BenchmarkSnapshot, the Debian VM example's tree: 872 MB,
// 21,216 entries; 2 cores shared with other builds, cache on ext4 on a
// virtio disk, tree on tmpfs), save including fsync:
//
//	mechanism                          save    restore  size in cache
//	Go tar + zstd fastest              6.0 s   3.3 s    288 MB
//	GNU tar | zstd -1 -T2 (processes)  4.4 s   2.4 s    302 MB
//	cp -a --reflink=auto (a copy)      2.7 s   1.7 s    885 MB
//
// chose the Go tar stream, compressed. Its parts, measured on 2 December
// 2026 on the Debian tarball example's final tree (833 MB of tar, 22,518
// entries; same machine, load 2-4 from other builds), each alone:
//
//	walk and read the tree (tar to nowhere)       0.4-0.7 s
//	sha256 of the stream (SHA-NI)                 0.3-0.5 s
//	zstd fastest, 2 goroutines                    2.9-4.6 s  (276 MB)
//	s2 (klauspost/compress), 2 goroutines         2.2 s      (375 MB)
//	write to the cache's disk                     0.7 s      (833 MB)
//	fsync                                         0.2-0.3 s
//
// Compression was two thirds of a snapshot's time: on a cold build of
// that example, snapshots and output entries (two 874 MB outputs) cost
// 21 s of a 95 s build (22 %, issue 13's target is 10 %), and with two
// images on two cores the compressor took the CPU the other build needed
// (bench/parallel.sh: -j 1 with the cache was slower than three builds
// without). So entries are kept uncompressed, as the disk snapshot
// already was (DiskArchive): about 3 times the disk (the tarball
// example's cache: 943 MB with zstd), bounded by `dib cache prune
// --max-size`, for a third of the time; restoring reads plain tar, no
// decompression either. Entries written by older versions (.tar.zst) are
// still read (Meta.Archive picks the name an entry has). A registry
// (runtime/cache/remote) stores the payload files as they are.
// After the change, one run of `bench/rebuild.sh examples/debian-tarball.yaml`
// (2 December 2026): cold 52.8 s with the cache, 47.3 s without (11.5 %;
// 23.6 % before), the cache's writes 8.3 s in all: the twelve tree
// snapshots 3.3 s, the two output entries (874 MB each) 5.0 s. Three
// images sharing a bootstrap (bench/parallel.sh): -j 1 with the cache
// 0.80 of building them apart without it (1.09 before).
//
// Then the payload files were written with O_DIRECT (direct.go,
// runtime/directio): the fsync of a buffered write cost almost 3 s of CPU
// per GB here. Four runs of `bench/rebuild.sh examples/debian-vm.yaml`
// (2 December 2026, alone on the machine): the cache's writes 3.2-3.6 s of
// a 53-69 s cold build, 5.1-6.3 % over the build without them (the
// script's "cache writes" line, which the host's noise does not move; by
// wall time, with the noise, -0.8 to 10.2 %).
//
// The Go stream rather than a copy or GNU tar: the exactness of owners,
// xattrs, devices and holes is ours, tested property by property
// (archive_test.go), verified by digest as it is read, and the same format
// holds the outputs.
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
// what writing the uncompressed changed files does) or a validation that
// aborts when a file changed under the reader (dpkg in the next phase
// rewrites most of /var/lib/dpkg at once, so the most useful points would
// be the ones lost); and with several images on two cores (dib apply -j)
// no core is idle to write it on.
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
//
// snapshotLevel is the compression of a payload named *.tar.zst (entries
// of older versions were; Writer.AddTree still writes one when asked).
const snapshotLevel = zstd.SpeedFastest

// The payload files of a snapshot entry (the tree, a layer of it, the
// hook tree) and of an output step's entry (the files it wrote): plain
// tar streams (see above for why not compressed).
const (
	TreeArchive    = "tree.tar"
	HooksArchive   = "hooks.tar"
	OutputsArchive = "outputs.tar"
)

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

// AddTree stores the tree at dir as payload file name (a tar stream,
// zstd-compressed when name ends in ".zst").
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
		// f buffers (payloadFile): no bufio in between.
		if err := write(f); err != nil {
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
	want := m.Payload(name)
	if want == nil {
		return fmt.Errorf("%w: %s has no %s", ErrCorrupt, short(m.Key), name)
	}
	f, err := os.Open(c.Path(m.Key, name))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	defer f.Close()
	hr := newHashingReader(f)
	defer hr.Close()
	var r io.Reader = hr
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
	if _, err := io.Copy(io.Discard, hr); err != nil && xerr == nil {
		xerr = err
	}
	if got := hr.Sum(); got != want.SHA256 {
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
		if err := c.extract(e, e.Archive("tree"), dir, i > 0); err != nil {
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
