package cache

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A snapshot of a tree is a PAX tar stream (kept uncompressed in the
// cache, snapshot.go says why), written and read here rather than by GNU tar so that every
// property of the tree survives exactly and the format is ours to test:
//
//   - numeric owners and groups, the full mode (setuid, setgid, sticky),
//   - every extended attribute (security.capability, ACLs as
//     system.posix_acl_*, trusted.*, user.*) as SCHILY.xattr records,
//   - hard links (one inode, several names),
//   - character and block devices, FIFOs,
//   - sparse files: only the data segments are stored, with their map in a
//     DIB.sparse record, and the holes are recreated on extraction,
//   - modification times to the nanosecond.
//
// The walk stays on the tree's filesystem: what is mounted inside it (the
// chroot's /proc, /sys, /dev, the shared apt archive) never enters a
// snapshot; the mount point itself is kept as an empty directory.
// Entries are written in sorted order, so the same tree gives the same
// stream.

// paxSparse and paxSize describe a sparse file: "OFF:LEN,OFF:LEN…" and the
// file's full size.
const (
	paxSparse = "DIB.sparse"
	paxSize   = "DIB.size"
	paxXattr  = "SCHILY.xattr."
)

// WriteTree writes the tree at root to w as a tar stream.
func WriteTree(w io.Writer, root string) error {
	var st unix.Stat_t
	if err := unix.Lstat(root, &st); err != nil {
		return err
	}
	wr := newTarWriter(w, root, st.Dev)
	if err := wr.entry(".", &st); err != nil {
		return err
	}
	if err := wr.dir("."); err != nil {
		return err
	}
	return wr.tw.Close()
}

func newTarWriter(w io.Writer, root string, dev uint64) *treeWriter {
	return &treeWriter{tw: tar.NewWriter(w), root: root, dev: dev, links: map[[2]uint64]string{}, mounts: mountsUnder(root)}
}

// mountsUnder lists the mount points below root (relative, slash
// separated) from /proc/self/mountinfo: a bind mount of a directory of the
// same filesystem has the same device number, so the device alone does not
// show it.
func mountsUnder(root string) map[string]bool {
	out := map[string]bool{}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return out
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return out
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if rel, err := filepath.Rel(abs, mp); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
			out[filepath.ToSlash(rel)] = true
		}
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space, …).
func unescapeMount(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

type treeWriter struct {
	tw    *tar.Writer
	root  string
	dev   uint64
	links map[[2]uint64]string // (dev, ino) of files with several names -> first name
	buf   []byte
	// mounts are the mount points inside the tree: kept as directories,
	// never entered.
	mounts map[string]bool
}

func (w *treeWriter) dir(rel string) error {
	f, err := os.Open(filepath.Join(w.root, rel))
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
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(w.root, child), &st); err != nil {
			return err
		}
		if err := w.entry(child, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Dev == w.dev && !w.mounts[child] {
			if err := w.dir(child); err != nil {
				return err
			}
		}
	}
	return nil
}

// entry writes the tar header and content of one file of the tree: its
// type, owner, mode, times, extended attributes and sparse extents. It is
// about 100 lines because each file type's header and data are one
// switch; the snapshot must keep every property
// (TestSnapshotKeepsEveryProperty), and one place shows them all.
func (w *treeWriter) entry(rel string, st *unix.Stat_t) error {
	full := filepath.Join(w.root, rel)
	h := &tar.Header{
		Name:    rel,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
		Format:  tar.FormatPAX,
	}
	var sparse []segment
	isSparse := false
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		h.Typeflag = tar.TypeDir
		if rel != "." {
			h.Name = rel + "/"
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(full)
		if err != nil {
			return err
		}
		h.Typeflag, h.Linkname = tar.TypeSymlink, target
	case unix.S_IFCHR, unix.S_IFBLK:
		h.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			h.Typeflag = tar.TypeBlock
		}
		h.Devmajor, h.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		h.Typeflag = tar.TypeFifo
	case unix.S_IFSOCK:
		return nil // sockets belong to running processes; tar skips them too
	case unix.S_IFREG:
		if st.Nlink > 1 {
			id := [2]uint64{st.Dev, st.Ino}
			if first, ok := w.links[id]; ok {
				h.Typeflag, h.Linkname = tar.TypeLink, first
				return w.tw.WriteHeader(h)
			}
			w.links[id] = rel
		}
		h.Typeflag, h.Size = tar.TypeReg, st.Size
		if st.Size > 0 && st.Blocks*512 < st.Size {
			segs, err := dataSegments(full, st.Size)
			if err != nil {
				return err
			}
			var n int64
			for _, s := range segs {
				n += s.len
			}
			if n < st.Size {
				sparse, h.Size, isSparse = segs, n, true
			}
		}
	default:
		return fmt.Errorf("%s: unsupported file type %o", full, st.Mode&unix.S_IFMT)
	}
	xattrs, err := readXattrs(full)
	if err != nil {
		return err
	}
	if len(xattrs) > 0 || isSparse {
		h.PAXRecords = map[string]string{}
	}
	for k, v := range xattrs {
		h.PAXRecords[paxXattr+k] = v
	}
	if isSparse {
		var parts []string
		for _, s := range sparse {
			parts = append(parts, strconv.FormatInt(s.off, 10)+":"+strconv.FormatInt(s.len, 10))
		}
		h.PAXRecords[paxSparse] = strings.Join(parts, ",")
		h.PAXRecords[paxSize] = strconv.FormatInt(st.Size, 10)
	}
	if err := w.tw.WriteHeader(h); err != nil {
		return fmt.Errorf("%s: %w", full, err)
	}
	if h.Typeflag != tar.TypeReg || h.Size == 0 {
		return nil
	}
	f, err := os.Open(full)
	if err != nil {
		return err
	}
	defer f.Close()
	if w.buf == nil {
		w.buf = make([]byte, 1<<20)
	}
	if !isSparse {
		sparse = []segment{{0, h.Size}}
	}
	for _, s := range sparse {
		if _, err := io.CopyBuffer(w.tw, io.NewSectionReader(f, s.off, s.len), w.buf); err != nil {
			return fmt.Errorf("%s: %w", full, err)
		}
	}
	return nil
}

type segment struct{ off, len int64 }

// dataSegments lists the data extents of a file (SEEK_DATA/SEEK_HOLE).
func dataSegments(name string, size int64) ([]segment, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fd := int(f.Fd())
	var segs []segment
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole remains
		}
		if err != nil {
			return []segment{{0, size}}, nil // no hole support: store it whole
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, err
		}
		if hole > size {
			hole = size
		}
		segs = append(segs, segment{data, hole - data})
		off = hole
	}
	return segs, nil
}

// readXattrs returns every extended attribute of a path (not following a
// symlink).
func readXattrs(name string) (map[string]string, error) {
	sz, err := unix.Llistxattr(name, nil)
	if errors.Is(err, unix.ENOTSUP) || sz == 0 {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: listxattr: %w", name, err)
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(name, buf)
	if err != nil {
		return nil, fmt.Errorf("%s: listxattr: %w", name, err)
	}
	out := map[string]string{}
	for _, k := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		if k == "" {
			continue
		}
		vsz, err := unix.Lgetxattr(name, k, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: getxattr %s: %w", name, k, err)
		}
		v := make([]byte, vsz)
		if vsz > 0 {
			if vsz, err = unix.Lgetxattr(name, k, v); err != nil {
				return nil, fmt.Errorf("%s: getxattr %s: %w", name, k, err)
			}
		}
		out[k] = string(v[:vsz])
	}
	return out, nil
}

// extract recreates at root (an existing, empty directory) the tree a
// WriteTree stream holds (layer false); it refuses names that leave root.
// With layer true it applies a WriteLayer stream: root holds the layer's
// parent state; whiteouts remove paths, entries replace what is at their
// path, directories that stay keep their content.
//
// It is long (about 110 lines) because its checks are one loop: the
// directories made so far, the layer's own hard links and the directory
// times are the state each entry is checked against, and a name that
// leaves root must be refused where the entry is read.
func extract(r io.Reader, root string, layer bool) error {
	tr := tar.NewReader(r)
	type dirTime struct {
		path string
		t    time.Time
	}
	var dirs []dirTime
	// made holds the directories extracted so far: every entry's parent
	// must be one, so no name reaches outside root through a symlink.
	made := map[string]bool{root: true}
	// A layer's hard links name files of the same layer.
	files := map[string]bool{}
	buf := make([]byte, 1<<20)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		full, err := within(root, h.Name)
		if err != nil {
			return err
		}
		if _, ok := h.PAXRecords[paxWhiteout]; ok {
			if !layer || full == root {
				return fmt.Errorf("snapshot entry %q: a whiteout outside a layer", h.Name)
			}
			if err := realDirs(root, filepath.Dir(full)); err != nil {
				return err
			}
			if err := os.RemoveAll(full); err != nil {
				return err
			}
			continue
		}
		if full != root && !made[filepath.Dir(full)] {
			return fmt.Errorf("snapshot entry %q: its directory is not in the snapshot", h.Name)
		}
		if layer && full != root {
			// What the parent state has at this path goes, unless a
			// directory stays a directory.
			fi, err := os.Lstat(full)
			if err == nil && !(fi.IsDir() && h.Typeflag == tar.TypeDir) {
				if err := os.RemoveAll(full); err != nil {
					return err
				}
			} else if err != nil && !os.IsNotExist(err) {
				return err
			}
		}
		mode := uint32(h.Mode & 0o7777)
		switch h.Typeflag {
		case tar.TypeDir:
			if full != root {
				if err := os.Mkdir(full, 0o700); err != nil && !os.IsExist(err) {
					return err
				}
			}
			if layer {
				if err := dropXattrs(full, h); err != nil {
					return err
				}
			}
			made[full] = true
			dirs = append(dirs, dirTime{full, h.ModTime})
		case tar.TypeReg:
			if err := writeFile(tr, full, h, buf); err != nil {
				return err
			}
			files[full] = true
		case tar.TypeLink:
			target, err := within(root, h.Linkname)
			if err != nil {
				return err
			}
			if layer && !files[target] {
				return fmt.Errorf("snapshot entry %q: hard link to %q, not in the layer", h.Name, h.Linkname)
			}
			if err := os.Link(target, full); err != nil {
				return err
			}
			continue // the first name carries the inode's metadata
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, full); err != nil {
				return err
			}
		case tar.TypeChar:
			err = unix.Mknod(full, unix.S_IFCHR|mode, int(unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))))
		case tar.TypeBlock:
			err = unix.Mknod(full, unix.S_IFBLK|mode, int(unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))))
		case tar.TypeFifo:
			err = unix.Mkfifo(full, mode)
		default:
			return fmt.Errorf("%s: unsupported tar entry type %q", h.Name, h.Typeflag)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", full, err)
		}
		if err := setMeta(full, h); err != nil {
			return err
		}
	}
	// Directory times last, deepest first: creating their entries moved them.
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		ts := []unix.Timespec{unix.NsecToTimespec(d.t.UnixNano()), unix.NsecToTimespec(d.t.UnixNano())}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, d.path, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	return nil
}

// realDirs checks that dir and every directory between root and it are
// directories, not symlinks (a whiteout never removes through a link).
func realDirs(root, dir string) error {
	for d := dir; d != root; d = filepath.Dir(d) {
		if len(d) < len(root) {
			return fmt.Errorf("%s is not inside %s", dir, root)
		}
		fi, err := os.Lstat(d)
		if os.IsNotExist(err) {
			continue // nothing to remove below it
		}
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("snapshot layer: %s is not a directory", d)
		}
	}
	return nil
}

// dropXattrs removes the extended attributes of a directory kept by a
// layer that its entry does not have (setMeta sets the others).
func dropXattrs(full string, h *tar.Header) error {
	have, err := readXattrs(full)
	if err != nil {
		return err
	}
	for k := range have {
		if _, ok := h.PAXRecords[paxXattr+k]; !ok {
			if err := unix.Lremovexattr(full, k); err != nil {
				return fmt.Errorf("%s: removexattr %s: %w", full, k, err)
			}
		}
	}
	return nil
}

func writeFile(tr *tar.Reader, full string, h *tar.Header, buf []byte) error {
	f, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if spec, ok := h.PAXRecords[paxSparse]; ok {
		size, err := strconv.ParseInt(h.PAXRecords[paxSize], 10, 64)
		if err != nil {
			return fmt.Errorf("%s: bad sparse size: %w", h.Name, err)
		}
		if spec != "" {
			for _, part := range strings.Split(spec, ",") {
				o, l, _ := strings.Cut(part, ":")
				off, err1 := strconv.ParseInt(o, 10, 64)
				n, err2 := strconv.ParseInt(l, 10, 64)
				if err1 != nil || err2 != nil || off < 0 || n < 0 || off+n > size {
					return fmt.Errorf("%s: bad sparse map %q", h.Name, spec)
				}
				if _, err := f.Seek(off, io.SeekStart); err != nil {
					return err
				}
				if _, err := io.CopyBuffer(f, io.LimitReader(tr, n), buf); err != nil {
					return err
				}
			}
		}
		if err := f.Truncate(size); err != nil {
			return err
		}
	} else if _, err := io.CopyBuffer(f, tr, buf); err != nil {
		return fmt.Errorf("%s: %w", full, err)
	}
	return f.Close()
}

// setMeta sets owner, mode, extended attributes and time, in that order:
// chown clears setuid bits and file capabilities, so both come after it.
func setMeta(full string, h *tar.Header) error {
	if err := os.Lchown(full, h.Uid, h.Gid); err != nil {
		return err
	}
	if h.Typeflag != tar.TypeSymlink {
		if err := unix.Chmod(full, uint32(h.Mode&0o7777)); err != nil {
			return fmt.Errorf("%s: chmod: %w", full, err)
		}
	}
	keys := make([]string, 0, len(h.PAXRecords))
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, paxXattr) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := unix.Lsetxattr(full, strings.TrimPrefix(k, paxXattr), []byte(h.PAXRecords[k]), 0); err != nil {
			return fmt.Errorf("%s: setxattr %s: %w", full, strings.TrimPrefix(k, paxXattr), err)
		}
	}
	if h.Typeflag == tar.TypeDir {
		return nil
	}
	ts := []unix.Timespec{unix.NsecToTimespec(h.ModTime.UnixNano()), unix.NsecToTimespec(h.ModTime.UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, full, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// within joins a tar name under root, refusing names that leave it.
func within(root, name string) (string, error) {
	clean := path.Clean("/" + name)
	if strings.Contains(name, "\x00") {
		return "", fmt.Errorf("bad name %q in snapshot", name)
	}
	if clean == "/" {
		return root, nil
	}
	return filepath.Join(root, filepath.FromSlash(clean[1:])), nil
}
