package element

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/dibuild/dib/compiler/internal/pyrepr"
	"github.com/dibuild/dib/spec/limits"
)

// location is where an element was found on the search path.
type location struct {
	src int    // index into Options.Path
	dir string // directory in that Source's FS
}

// indexElements lists every element of every search-path entry, as DIB's
// _find_all_elements does: entries are walked in reverse, so an earlier
// entry's element replaces a later one's; every directory (or symlink to a
// directory) at an entry's root is an element, named after the last
// component of its real path. A nil or non-directory entry is
// InvalidElementDir; as in DIB, the last bad entry is the one reported.
func indexElements(path []Source) (idx map[string]location, shadowed map[string][]location, f *Failure) {
	idx = make(map[string]location)
	shadowed = make(map[string][]location)
	for i := len(path) - 1; i >= 0; i-- {
		s := path[i]
		if s.FS == nil {
			return nil, nil, invalidDir(s.Name)
		}
		st, err := fs.Stat(s.FS, ".")
		if err != nil || !st.IsDir() {
			return nil, nil, invalidDir(s.Name)
		}
		ents, err := fs.ReadDir(s.FS, ".")
		if err != nil {
			return nil, nil, &Failure{Kind: KindInvalidDir, Message: fmt.Sprintf("ELEMENTS_PATH entry '%s' cannot be listed: %v", s.Name, err)}
		}
		for _, e := range ents {
			name := e.Name()
			if !e.IsDir() {
				if e.Type()&fs.ModeSymlink == 0 {
					continue
				}
				st, err := fs.Stat(s.FS, name)
				if err != nil || !st.IsDir() {
					continue
				}
				name = realBase(s.FS, name)
			}
			if old, ok := idx[name]; ok {
				shadowed[name] = append(shadowed[name], old)
			}
			idx[name] = location{src: i, dir: e.Name()}
		}
	}
	return idx, shadowed, nil
}

func invalidDir(name string) *Failure {
	// DIB's message ends with a space.
	return &Failure{Kind: KindInvalidDir, Message: fmt.Sprintf("ELEMENTS_PATH entry '%s' is not a directory ", name)}
}

// realBase follows the symlink chain of a top-level entry and returns the
// last component of where it ends, as os.path.realpath + basename does in
// DIB. A target that leaves the FS is named after its last component.
func realBase(fsys fs.FS, name string) string {
	cur := name
	for range 40 {
		t, err := fs.ReadLink(fsys, cur)
		if err != nil {
			break
		}
		if path.IsAbs(t) {
			return path.Base(t)
		}
		next := path.Clean(path.Join(path.Dir(cur), t))
		if next == "." || next == ".." || strings.HasPrefix(next, "../") {
			return path.Base(t)
		}
		cur = next
	}
	return path.Base(cur)
}

// nameLine is one entry of element-deps or element-provides.
type nameLine struct {
	name string
	line int
}

// readSet reads element-deps or element-provides as DIB's Element does:
// universal newlines, each line stripped of Python whitespace, blank lines
// dropped, duplicates dropped (a set; dib keeps the first occurrence).
// A missing file is an empty set. There are no comments.
func readSet(fsys fs.FS, name string) ([]nameLine, error) {
	lim := limits.Default()
	data, err := lim.ReadFS(fsys, name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	if len(data) > lim.Bytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, lim.Bytes)
	}
	var out []nameLine
	seen := make(map[string]bool)
	for i, l := range splitLines(string(data)) {
		l = strings.TrimFunc(l, pySpace)
		if l == "" || seen[l] {
			continue
		}
		seen[l] = true
		out = append(out, nameLine{name: l, line: i + 1})
	}
	return out, nil
}

// splitLines splits on \n, \r\n and \r (Python's universal newlines).
func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\n':
			out = append(out, s[start:i])
			start = i + 1
		case '\r':
			out = append(out, s[start:i])
			if i+1 < len(s) && s[i+1] == '\n' {
				i++
			}
			start = i + 1
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// pySpace is Python's str.isspace for the characters str.strip removes.
func pySpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\v', '\f', '\r', 0x1c, 0x1d, 0x1e, 0x1f, 0x85, 0xa0,
		0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200a
}

// pyRepr renders a list of strings as Python's repr does: ['a', 'b'].
func pyRepr(list []string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, s := range list {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(pyrepr.String(s))
	}
	b.WriteByte(']')
	return b.String()
}
