package element

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fixtureFS is os.DirFS(dir) with the symlinks and modes listed in
// testdata/fixture-metadata.txt restored where the copy lost them.
func fixtureFS(t testing.TB, dir string) fs.FS {
	t.Helper()
	o := &overlayFS{base: os.DirFS(dir), links: map[string]string{}, modes: map[string]fs.FileMode{}}
	data, err := os.ReadFile(filepath.Join("testdata", "fixture-metadata.txt"))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) != 3 {
			t.Fatalf("fixture-metadata.txt: bad line %q", sc.Text())
		}
		p := f[0]
		fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil {
			continue // not in this oracle's fixtures
		}
		switch f[1] {
		case "symlink":
			if fi.Mode()&fs.ModeSymlink != 0 {
				continue
			}
			content, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
			if err == nil && string(content) == f[2] {
				o.links[p] = f[2]
			}
		case "mode":
			m, err := strconv.ParseUint(f[2], 8, 32)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != fs.FileMode(m) {
				o.modes[p] = fs.FileMode(m)
			}
		default:
			t.Fatalf("fixture-metadata.txt: unknown kind %q", f[1])
		}
	}
	return o
}

type overlayFS struct {
	base  fs.FS
	links map[string]string
	modes map[string]fs.FileMode
}

type overInfo struct {
	fs.FileInfo
	mode fs.FileMode
}

func (i overInfo) Mode() fs.FileMode { return i.mode }

type overFile struct {
	fs.File
	mode fs.FileMode
}

func (f overFile) Stat() (fs.FileInfo, error) {
	fi, err := f.File.Stat()
	if err != nil {
		return nil, err
	}
	return overInfo{fi, fi.Mode()&fs.ModeType | f.mode}, nil
}

func (o *overlayFS) follow(name string) (string, error) {
	for range 40 {
		t, ok := o.links[name]
		if !ok {
			return name, nil
		}
		name = path.Join(path.Dir(name), t)
		if !fs.ValidPath(name) {
			return "", fs.ErrNotExist
		}
	}
	return "", fs.ErrNotExist
}

func (o *overlayFS) Open(name string) (fs.File, error) {
	name, err := o.follow(name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	f, err := o.base.Open(name)
	if err != nil {
		return nil, err
	}
	if m, ok := o.modes[name]; ok {
		return overFile{f, m}, nil
	}
	return f, nil
}

func (o *overlayFS) Stat(name string) (fs.FileInfo, error) {
	name, err := o.follow(name)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	fi, err := fs.Stat(o.base, name)
	if err != nil {
		return nil, err
	}
	if m, ok := o.modes[name]; ok {
		return overInfo{fi, fi.Mode()&fs.ModeType | m}, nil
	}
	return fi, nil
}

func (o *overlayFS) Lstat(name string) (fs.FileInfo, error) {
	fi, err := fs.Lstat(o.base, name)
	if err != nil {
		return nil, err
	}
	if _, ok := o.links[name]; ok {
		return overInfo{fi, fs.ModeSymlink | 0o777}, nil
	}
	if m, ok := o.modes[name]; ok {
		return overInfo{fi, fi.Mode()&fs.ModeType | m}, nil
	}
	return fi, nil
}

func (o *overlayFS) ReadLink(name string) (string, error) {
	if t, ok := o.links[name]; ok {
		return t, nil
	}
	return fs.ReadLink(o.base, name)
}

type overEntry struct {
	fs.DirEntry
	o    *overlayFS
	full string
}

func (e overEntry) Type() fs.FileMode {
	if _, ok := e.o.links[e.full]; ok {
		return fs.ModeSymlink
	}
	return e.DirEntry.Type()
}

func (e overEntry) IsDir() bool { return e.Type().IsDir() }

func (e overEntry) Info() (fs.FileInfo, error) { return e.o.Lstat(e.full) }

func (o *overlayFS) ReadDir(name string) ([]fs.DirEntry, error) {
	ents, err := fs.ReadDir(o.base, name)
	if err != nil {
		return nil, err
	}
	for i, e := range ents {
		ents[i] = overEntry{e, o, path.Join(name, e.Name())}
	}
	return ents, nil
}
