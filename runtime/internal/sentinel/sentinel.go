// Package sentinel helps tests prove that nothing outside the allowed
// directories changed: a sentinel directory is filled with a few files,
// snapshotted (names, modes, sizes, contents, mtimes) before the test's
// action and compared after.
package sentinel

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// New creates a sentinel directory with a file "evil" (the name escape
// attempts aim at) and a subdirectory, and returns it with its snapshot.
func New(t testing.TB) (dir string, snap Snapshot) {
	t.Helper()
	// Not under $TMPDIR (where the test's own directories are): a link
	// to it from a tree's /tmp must not resolve back into that tree.
	dir, err := os.MkdirTemp("/var/tmp", "dib-sentinel-")
	if err != nil {
		dir = t.TempDir()
	} else {
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	for name, content := range map[string]string{"evil": "precious\n", "x/keep": "keep\n"} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, Take(t, dir)
}

// Snapshot is one line per entry of a directory tree.
type Snapshot []string

// Take snapshots dir.
func Take(t testing.TB, dir string) Snapshot {
	t.Helper()
	var s Snapshot
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		line := fmt.Sprintf("%s %v %d %d", rel, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		s = append(s, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(s)
	return s
}

// Unchanged fails the test if dir differs from snap.
func (snap Snapshot) Unchanged(t testing.TB, dir string) {
	t.Helper()
	now := Take(t, dir)
	if strings.Join(now, "\n") != strings.Join(snap, "\n") {
		t.Errorf("sentinel directory %s changed:\nbefore:\n  %s\nafter:\n  %s", dir, strings.Join(snap, "\n  "), strings.Join(now, "\n  "))
	}
}

// Rel returns a path relative to from that leads to target through "..":
// what an attacker writes to reach target from a directory dib uses.
func Rel(t testing.TB, from, target string) string {
	t.Helper()
	r, err := filepath.Rel(from, target)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
