// Package safepath is the runtime's one containment check: every name
// from a plan that becomes a path (image name, output paths, block-device
// node names, mount points, hook-tree paths, the release in cache paths)
// goes through it where the path is used, so that nothing a plan file, a
// Dibfile or an element says can make dib touch a file outside the
// directory it must be in. The compiler validates the same names earlier;
// this is the second, independent check at the point of use.
//
// Three checks, by what the name is:
//
//   - Name: one path component (a node name, an image name).
//   - Under: a relative path inside a directory of the host (outputs in
//     the output directory, build files in the work directory). Symlinks
//     on the way are followed and must stay inside.
//   - InRoot: a path as seen from inside a tree used as a chroot (a
//     mount point, a hook file). Symlinks on the way resolve as they would
//     in the chroot, so they can never lead out of it.
//
// A path with a ".." component is refused by Under and InRoot: nothing a
// plan names needs one, and refusing it keeps the error close to its cause.
package safepath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// maxLinks bounds the symlinks followed while resolving one path (as the
// kernel's ELOOP does).
const maxLinks = 40

// Error is a refused name: what it is, the name, and why.
type Error struct {
	Kind string // e.g. "block-device node name", "output path"
	Name string
	Why  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s %q %s", e.Kind, e.Name, e.Why)
}

// Name checks that s can be used as one path component: not empty, not
// "." or "..", without "/" or NUL, at most 255 bytes.
func Name(kind, s string) error {
	switch {
	case s == "":
		return &Error{kind, s, "is empty"}
	case s == "." || s == "..":
		return &Error{kind, s, "is not a name"}
	case strings.ContainsRune(s, '/'):
		return &Error{kind, s, "contains a /"}
	case strings.ContainsRune(s, 0):
		return &Error{kind, s, "contains a NUL byte"}
	case len(s) > 255:
		return &Error{kind, s, "is longer than 255 bytes"}
	}
	return nil
}

// Under returns dir joined with rel, refusing a rel that is absolute, has
// a ".." component, or leads out of dir through a symlink (existing
// components are resolved; the result is inside dir's real path). dir
// itself may be a symlink.
func Under(kind, dir, rel string) (string, error) {
	if filepath.IsAbs(rel) {
		return "", &Error{kind, rel, "is absolute; it must be relative to " + dir}
	}
	if err := plain(kind, rel); err != nil {
		return "", err
	}
	if strings.Trim(rel, "/.") == "" {
		return "", &Error{kind, rel, "names no file in " + dir}
	}
	real, err := filepath.EvalSymlinks(dir)
	if errors.Is(err, fs.ErrNotExist) {
		real, err = filepath.Abs(dir)
	}
	if err != nil {
		return "", fmt.Errorf("%s %q: %w", kind, rel, err)
	}
	if _, err := resolve(real, rel, false); err != nil {
		return "", &Error{kind, rel, err.Error() + " (it must stay in " + dir + ")"}
	}
	return filepath.Join(dir, rel), nil
}

// InRoot returns the host path of p as seen from inside root (a tree used
// as a chroot; p may be absolute or relative to it). ".." components are
// refused; symlinks in existing components are followed with root as "/",
// so the result is always inside root.
func InRoot(kind, root, p string) (string, error) {
	if err := plain(kind, p); err != nil {
		return "", err
	}
	res, err := resolve(filepath.Clean(root), p, true)
	if err != nil {
		return "", &Error{kind, p, err.Error()}
	}
	return res, nil
}

// plain refuses NUL bytes and ".." components.
func plain(kind, p string) error {
	if strings.ContainsRune(p, 0) {
		return &Error{kind, p, "contains a NUL byte"}
	}
	for _, c := range strings.Split(filepath.ToSlash(p), "/") {
		if c == ".." {
			return &Error{kind, p, `has a ".." component`}
		}
	}
	return nil
}

// resolve walks p under root component by component, following symlinks.
// With chroot set an absolute link target restarts at root and ".." stops
// at root; without it the walk must never leave root.
func resolve(root, p string, chroot bool) (string, error) {
	comps := split(p)
	var cur []string // resolved components below root
	links := 0
	for len(comps) > 0 {
		c := comps[0]
		comps = comps[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(cur) == 0 {
				if !chroot {
					return "", errors.New("leads out through a symlink")
				}
				continue
			}
			cur = cur[:len(cur)-1]
			continue
		}
		next := filepath.Join(root, filepath.Join(append(cur, c)...))
		fi, err := os.Lstat(next)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				cur = append(cur, c) // nothing below can be a link yet
				continue
			}
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = append(cur, c)
			continue
		}
		links++
		if links > maxLinks {
			return "", errors.New("has too many levels of symbolic links")
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			if !chroot {
				rel, ok := relInside(root, filepath.Clean(target))
				if !ok {
					return "", fmt.Errorf("leads to %s through a symlink", target)
				}
				cur = nil
				comps = append(split(rel), comps...)
				continue
			}
			cur = nil
		}
		comps = append(split(target), comps...)
	}
	return filepath.Join(root, filepath.Join(cur...)), nil
}

func split(p string) []string { return strings.Split(filepath.ToSlash(p), "/") }

// relInside returns target relative to root when target is root or below it.
func relInside(root, target string) (string, bool) {
	if !within(root, target) {
		return "", false
	}
	rel, err := filepath.Rel(root, target)
	return rel, err == nil
}

// within reports whether p is dir or lexically below it (both clean, absolute).
func within(dir, p string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+string(filepath.Separator))
}
