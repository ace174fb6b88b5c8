package cache

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// Layers: a snapshot point after the first one of a build keeps only what
// changed since the build's previous snapshot (its parent entry): the
// entries of the tree whose inode or status-change time (ctime) differ,
// with their directories, and a whiteout for each path that is gone.
// Restoring it extracts its parent's chain, then the layer (extract).
//
// Why ctime: the kernel sets it on every change to an inode — content,
// owner, mode, extended attributes, link count, rename — and no system
// call lets a program set it back (touch and tar set mtime, not ctime).
// A path whose inode and ctime are what the previous scan saw holds what
// it held then. Timestamps come from a clock that advances in ticks
// (coarse time, at least every 10 ms), so a change in the same tick as the
// scan could keep its ctime: Scan returns only after that tick is over
// (settle), and nothing changes the tree during a scan (the build's
// steps run one after the other).
//
// Measured on the Debian VM example (bench/rebuild.sh): see snapshot.go.

// Manifest is what a scan saw of a tree: for every path, its inode and
// ctime.
type Manifest struct {
	ids map[string]fileID
}

type fileID struct {
	ino   uint64
	ctime int64 // ns
}

// paxWhiteout marks a layer entry that removes a path.
const paxWhiteout = "DIB.whiteout"

// settleTime is how long after a scan starts it returns: more than one
// tick of the coarse clock (10 ms at HZ=100), with margin.
const settleTime = 30 * time.Millisecond

// Scan records the inode and ctime of every path of the tree at root (on
// its filesystem, mount points kept as directories), in the walk order of
// WriteTree.
func Scan(root string) (*Manifest, error) {
	m, _, err := scan(root)
	return m, err
}

func scan(root string) (*Manifest, []string, error) {
	start := time.Now()
	var st unix.Stat_t
	if err := unix.Lstat(root, &st); err != nil {
		return nil, nil, err
	}
	m := &Manifest{ids: map[string]fileID{}}
	var order []string
	mounts := mountsUnder(root)
	var walk func(rel string, st *unix.Stat_t) error
	walk = func(rel string, st *unix.Stat_t) error {
		m.ids[rel] = fileID{st.Ino, st.Ctim.Nano()}
		order = append(order, rel)
		if st.Mode&unix.S_IFMT != unix.S_IFDIR || (rel != "." && mounts[rel]) {
			return nil
		}
		f, err := os.Open(filepath.Join(root, rel))
		if err != nil {
			return err
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return err
		}
		sort.Strings(names)
		for _, n := range names {
			child := path.Join(rel, n)
			var cst unix.Stat_t
			if err := unix.Lstat(filepath.Join(root, child), &cst); err != nil {
				return err
			}
			if cst.Mode&unix.S_IFMT == unix.S_IFSOCK {
				continue // not kept (treeWriter.entry)
			}
			if cst.Mode&unix.S_IFMT == unix.S_IFDIR && cst.Dev != st.Dev {
				// Another filesystem mounted here: kept as a directory.
				m.ids[child] = fileID{cst.Ino, cst.Ctim.Nano()}
				order = append(order, child)
				continue
			}
			if err := walk(child, &cst); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(".", &st); err != nil {
		return nil, nil, err
	}
	if d := settleTime - time.Since(start); d > 0 {
		time.Sleep(d)
	}
	return m, order, nil
}

// AddLayer stores, as payload file name, what changed in the tree at dir
// since base was scanned, and returns the tree's new manifest.
func (w *Writer) AddLayer(name, dir string, base *Manifest) (*Manifest, error) {
	var cur *Manifest
	err := w.addArchive(name, func(tw io.Writer) error {
		var err error
		cur, err = WriteLayer(tw, dir, base)
		return err
	})
	return cur, err
}

// WriteLayer writes the difference between base and the tree at root as
// a tar stream: whiteouts first (the topmost paths gone), then every
// changed or new entry with all its directories, in walk order.
func WriteLayer(w io.Writer, root string, base *Manifest) (*Manifest, error) {
	cur, order, err := scan(root)
	if err != nil {
		return nil, err
	}
	var gone []string
	for p := range base.ids {
		if _, ok := cur.ids[p]; !ok {
			gone = append(gone, p)
		}
	}
	sort.Strings(gone)
	var st unix.Stat_t
	if err := unix.Lstat(root, &st); err != nil {
		return nil, err
	}
	tw := newTarWriter(w, root, st.Dev)
	last := ""
	for _, p := range gone {
		if last != "" && (p == last || len(p) > len(last) && p[:len(last)+1] == last+"/") {
			continue // inside a path already removed
		}
		last = p
		h := &tar.Header{Name: p, Typeflag: tar.TypeReg, Format: tar.FormatPAX, PAXRecords: map[string]string{paxWhiteout: "1"}}
		if err := tw.tw.WriteHeader(h); err != nil {
			return nil, err
		}
	}
	emit := map[string]bool{".": true}
	for _, p := range order {
		if old, ok := base.ids[p]; ok && old == cur.ids[p] {
			continue
		}
		for d := p; !emit[d]; d = path.Dir(d) {
			emit[d] = true
		}
	}
	for _, p := range order {
		if !emit[p] {
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, p), &st); err != nil {
			return nil, err
		}
		if (fileID{st.Ino, st.Ctim.Nano()}) != cur.ids[p] {
			return nil, fmt.Errorf("%s changed while its snapshot was written", p)
		}
		if err := tw.entry(p, &st); err != nil {
			return nil, err
		}
	}
	return cur, tw.tw.Close()
}
