package element

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/dibuild/dib/spec/diag"
)

// node is one entry of the merged hook tree.
type node struct {
	mode     fs.FileMode // type bits and permissions
	link     string      // symlink target
	data     []byte      // regular file content
	element  string      // element it came from (first one for a directory)
	src      string      // where it came from, for messages
	elements []string    // directories: every element that merged into it
	kids     map[string]*node
	// byInstallTypes marks the install.d links the install-types element makes.
	byInstallTypes bool
}

const symlinkMode = fs.ModeSymlink | 0o777

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (n *node) isDir() bool  { return n.mode.IsDir() }
func (n *node) isLink() bool { return n.mode&fs.ModeSymlink != 0 }

func newDir(el, src string) *node {
	return &node{mode: fs.ModeDir | 0o755, element: el, src: src, elements: []string{el}, kids: map[string]*node{}}
}

// sameAs reports whether two non-directory entries are interchangeable.
func (n *node) sameAs(o *node) bool {
	return n.mode == o.mode && n.link == o.link && bytes.Equal(n.data, o.data)
}

// Results of resolve.
const (
	resOK      = iota
	resMissing // broken symlink or missing component
	resOutside // absolute symlink, or one leaving the hook tree
)

// resolve follows p (slash-separated, relative to the tree root) through
// the tree, symlinks included, as the kernel would inside the hooks
// directory. It returns the node, its canonical path and resOK, or why it
// cannot.
func resolve(root *node, p string) (*node, string, int) {
	parts := strings.Split(p, "/")
	nodes := []*node{root}
	var names []string
	hops := 0
	for len(parts) > 0 {
		c := parts[0]
		parts = parts[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(names) == 0 {
				return nil, "", resOutside
			}
			names, nodes = names[:len(names)-1], nodes[:len(nodes)-1]
			continue
		}
		cur := nodes[len(nodes)-1]
		if !cur.isDir() {
			return nil, "", resMissing
		}
		n := cur.kids[c]
		if n == nil {
			return nil, "", resMissing
		}
		if n.isLink() {
			hops++
			if hops > 40 {
				return nil, "", resMissing
			}
			if path.IsAbs(n.link) {
				return nil, "", resOutside
			}
			parts = append(strings.Split(n.link, "/"), parts...)
			continue
		}
		nodes = append(nodes, n)
		names = append(names, c)
	}
	return nodes[len(nodes)-1], strings.Join(names, "/"), resOK
}

// merger builds the hook tree as DIB's generate_hooks does.
type merger struct {
	r    *resolver
	root *node
}

// mergeHooks copies every element, in DIB's copy order (see the package
// doc): first each subdirectory (find -follow
// -mindepth 1 -maxdepth 1 -type d, except tests and __pycache__) through
// copy_hooks_not_overwrite, then each top-level regular file (find -follow
// -maxdepth 1 -type f, except *.pyc) to the tree root with cp -a.
func (r *resolver) mergeHooks(els []*loaded) (*node, bool) {
	m := &merger{r: r, root: newDir("", "")}
	m.root.elements = nil
	for _, el := range els {
		ents, err := fs.ReadDir(el.fs, ".")
		if err != nil {
			return nil, r.failAt(el, &Failure{Kind: KindRead, Message: err.Error()}, "")
		}
		var files []string
		for _, e := range ents {
			st, err := fs.Stat(el.fs, e.Name())
			if err != nil {
				continue // a broken symlink: find -follow matches neither -type d nor -type f
			}
			switch {
			case st.IsDir():
				if e.Name() == "tests" || e.Name() == "__pycache__" {
					continue
				}
				if !m.copyHooksNotOverwrite(el, e.Name()) {
					return nil, false
				}
			case st.Mode().IsRegular() && !strings.HasSuffix(e.Name(), ".pyc"):
				files = append(files, e.Name())
			}
		}
		for _, f := range files {
			if !m.cp(el, f, m.root, f, 0) {
				return nil, false
			}
		}
	}
	return m.root, true
}

// copyHooksNotOverwrite merges one element subdirectory: each top-level
// entry ($(ls dir): hidden names left out) is copied with cp -a, unless the
// target already is a regular file (test -f, which follows symlinks): that
// is DIB's "duplicated hook" error. An existing directory is merged into.
func (m *merger) copyHooksNotOverwrite(el *loaded, dir string) bool {
	target := m.root.kids[dir]
	switch {
	case target == nil:
		target = newDir(el.name, m.r.where(el.loc, dir))
		m.root.kids[dir] = target
	case !target.isDir():
		return m.r.failAt(el, &Failure{Kind: KindCopy, Message: fmt.Sprintf("mkdir: cannot create directory '%s': File exists", dir)}, dir)
	default:
		target.elements = append(target.elements, el.name)
	}
	ents, err := fs.ReadDir(el.fs, dir)
	if err != nil {
		return m.r.failAt(el, &Failure{Kind: KindRead, Message: err.Error()}, dir)
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		rel := dir + "/" + name
		if old := target.kids[name]; old != nil {
			if n, _, st := resolve(m.root, rel); st == resOK && n.mode.IsRegular() {
				f := &Failure{Kind: KindDuplicateHook, Message: "There is a duplicated hook in your elements: /" + rel}
				d := diag.Diagnostic{Severity: diag.Error, Subject: el.name, File: m.r.where(el.loc, rel), Message: f.Message}
				d = d.WithHint("%s is also provided by element %s (%s); DIB never lets one element's hook replace another's: rename or remove one of them", rel, old.element, old.src)
				m.r.result.Failure = f
				m.r.diags = m.r.diags.Append(d)
				return false
			}
		}
		if !m.cp(el, rel, target, name, 1) {
			return false
		}
	}
	return true
}

// cp is `cp -a` of one element entry into dir under name: symlinks stay
// symlinks, modes are kept, directories merge into existing ones and files
// replace what is there. depth is 0 for the hook tree root, 1 for the
// top level of a subdirectory, more below; a replaced entry below the root
// whose content differs depends on DIB's random element order and is
// reported as a warning.
func (m *merger) cp(el *loaded, rel string, dir *node, name string, depth int) bool {
	fi, err := fs.Lstat(el.fs, rel)
	if err != nil {
		return m.r.failAt(el, &Failure{Kind: KindRead, Message: err.Error()}, rel)
	}
	old := dir.kids[name]
	src := m.r.where(el.loc, rel)
	mode := fi.Mode() & (fs.ModeType | fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	var n *node
	switch {
	case mode&fs.ModeSymlink != 0:
		t, err := fs.ReadLink(el.fs, rel)
		if err != nil {
			return m.r.failAt(el, &Failure{Kind: KindRead, Message: err.Error()}, rel)
		}
		n = &node{mode: mode, link: t, element: el.name, src: src}
	case mode.IsRegular():
		data, err := fs.ReadFile(el.fs, rel)
		if err != nil {
			return m.r.failAt(el, &Failure{Kind: KindRead, Message: err.Error()}, rel)
		}
		n = &node{mode: mode, data: data, element: el.name, src: src}
	case mode.IsDir():
		switch {
		case old == nil:
			old = newDir(el.name, src)
			old.mode = mode
			dir.kids[name] = old
		case old.isDir():
			old.elements = append(old.elements, el.name)
		default:
			return m.r.failAt(el, &Failure{Kind: KindCopy, Message: fmt.Sprintf("cp: cannot overwrite non-directory '%s' with directory '%s'", rel, src)}, rel)
		}
		ents, err := fs.ReadDir(el.fs, rel)
		if err != nil {
			return m.r.failAt(el, &Failure{Kind: KindRead, Message: err.Error()}, rel)
		}
		for _, e := range ents {
			if !m.cp(el, rel+"/"+e.Name(), old, e.Name(), depth+1) {
				return false
			}
		}
		return true
	default:
		return true // devices, pipes, sockets: not element content
	}
	if old != nil {
		if old.isDir() {
			return m.r.failAt(el, &Failure{Kind: KindCopy, Message: fmt.Sprintf("cp: cannot overwrite directory '%s' with non-directory '%s'", rel, src)}, rel)
		}
		if depth > 0 && !old.sameAs(n) {
			d := diag.Warningf("hook tree entry %s comes from both %s and %s; DIB keeps whichever element it copies last, which varies between runs; dib keeps %s's", rel, old.element, el.name, el.name).WithSubject(el.name)
			d.File = src
			d.Hint = fmt.Sprintf("make the two files identical, or keep %s in one element only (other copy: %s)", rel, old.src)
			m.r.diags = m.r.diags.Append(d)
		}
	}
	dir.kids[name] = n
	return true
}

// failAt records a hook-merge failure of element el.
func (r *resolver) failAt(el *loaded, f *Failure, rel string) bool {
	r.result.Failure = f
	d := diag.Diagnostic{Severity: diag.Error, Subject: el.name, Message: f.Message}
	if rel != "" {
		d.File = r.where(el.loc, rel)
	}
	r.diags = r.diags.Append(d)
	return false
}

// flatten lists the tree, directories included, sorted by path.
func flatten(root *node) []File {
	var out []File
	var walk func(prefix string, n *node)
	walk = func(prefix string, n *node) {
		names := slices.Sorted(maps.Keys(n.kids))
		for _, k := range names {
			c := n.kids[k]
			p := k
			if prefix != "" {
				p = prefix + "/" + k
			}
			f := File{Path: p, Mode: c.mode, LinkTarget: c.link, Element: c.element}
			if c.mode.IsRegular() {
				f.Content = c.data
				f.SHA256 = sha256Hex(c.data)
			}
			out = append(out, f)
			if c.isDir() {
				walk(p, c)
			}
		}
	}
	walk("", root)
	// Paths are joined with "/", which sorts before most name bytes but
	// after some ('-', '.'); sort the full paths to honour the contract.
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}
