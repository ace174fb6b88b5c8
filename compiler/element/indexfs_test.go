package element

import (
	"bytes"
	"io"
	"io/fs"
	"path"
	"sort"
	"testing/fstest"
	"time"
)

// indexFS serves a MapFS from precomputed directory listings. MapFS lists
// a directory by scanning every key of the map, which makes any walk of a
// large MapFS quadratic; benchmarks use indexFS so they time the resolver,
// not MapFS.
type indexFS struct {
	files map[string]*fstest.MapFile
	dirs  map[string][]fs.DirEntry
}

type mapInfo struct {
	name string
	f    *fstest.MapFile
}

func (i mapInfo) Name() string       { return i.name }
func (i mapInfo) Size() int64        { return int64(len(i.f.Data)) }
func (i mapInfo) Mode() fs.FileMode  { return i.f.Mode }
func (i mapInfo) ModTime() time.Time { return i.f.ModTime }
func (i mapInfo) IsDir() bool        { return i.f.Mode.IsDir() }
func (i mapInfo) Sys() any           { return nil }

func newIndexFS(m fstest.MapFS) *indexFS {
	x := &indexFS{files: map[string]*fstest.MapFile{".": {Mode: fs.ModeDir | 0o755}}, dirs: map[string][]fs.DirEntry{}}
	children := map[string]map[string]bool{}
	for p, f := range m {
		x.files[p] = f
		for p != "." {
			parent := path.Dir(p)
			if children[parent] == nil {
				children[parent] = map[string]bool{}
			}
			children[parent][path.Base(p)] = true
			if _, ok := x.files[parent]; !ok {
				x.files[parent] = &fstest.MapFile{Mode: fs.ModeDir | 0o755}
			}
			p = parent
		}
	}
	for d, kids := range children {
		for k := range kids {
			full := path.Join(d, k)
			x.dirs[d] = append(x.dirs[d], fs.FileInfoToDirEntry(mapInfo{k, x.files[full]}))
		}
		sort.Slice(x.dirs[d], func(i, j int) bool { return x.dirs[d][i].Name() < x.dirs[d][j].Name() })
	}
	return x
}

func (x *indexFS) follow(name string) (string, *fstest.MapFile, error) {
	for range 40 {
		f, ok := x.files[name]
		if !ok {
			return "", nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		if f.Mode&fs.ModeSymlink == 0 {
			return name, f, nil
		}
		name = path.Join(path.Dir(name), string(f.Data))
	}
	return "", nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
}

type indexFile struct {
	info mapInfo
	r    *bytes.Reader
	ents []fs.DirEntry
}

func (f *indexFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *indexFile) Read(b []byte) (int, error) {
	if f.r == nil {
		return 0, io.EOF
	}
	return f.r.Read(b)
}
func (f *indexFile) Close() error { return nil }
func (f *indexFile) ReadDir(n int) ([]fs.DirEntry, error) {
	e := f.ents
	f.ents = nil
	return e, nil
}

func (x *indexFS) Open(name string) (fs.File, error) {
	p, f, err := x.follow(name)
	if err != nil {
		return nil, err
	}
	of := &indexFile{info: mapInfo{path.Base(name), f}}
	if f.Mode.IsDir() {
		of.ents = x.dirs[p]
	} else {
		of.r = bytes.NewReader(f.Data)
	}
	return of, nil
}

func (x *indexFS) Stat(name string) (fs.FileInfo, error) {
	_, f, err := x.follow(name)
	if err != nil {
		return nil, err
	}
	return mapInfo{path.Base(name), f}, nil
}

func (x *indexFS) Lstat(name string) (fs.FileInfo, error) {
	f, ok := x.files[name]
	if !ok {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: fs.ErrNotExist}
	}
	return mapInfo{path.Base(name), f}, nil
}

func (x *indexFS) ReadLink(name string) (string, error) {
	f, ok := x.files[name]
	if !ok || f.Mode&fs.ModeSymlink == 0 {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return string(f.Data), nil
}

func (x *indexFS) ReadDir(name string) ([]fs.DirEntry, error) {
	p, f, err := x.follow(name)
	if err != nil {
		return nil, err
	}
	if !f.Mode.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	return append([]fs.DirEntry(nil), x.dirs[p]...), nil
}

func (x *indexFS) ReadFile(name string) ([]byte, error) {
	_, f, err := x.follow(name)
	if err != nil {
		return nil, err
	}
	if f.Mode.IsDir() {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrInvalid}
	}
	return append([]byte(nil), f.Data...), nil
}
