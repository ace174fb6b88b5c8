package cache

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLayerRestoresEveryChange takes a tree, changes it in every way a
// phase can, and checks that the whole tree plus the layer restore the
// changed tree exactly, and that the layer holds only what changed.
func TestLayerRestoresEveryChange(t *testing.T) {
	src := tmpfsDir(t)
	makeTree(t, src)
	var full bytes.Buffer
	if err := WriteTree(&full, src); err != nil {
		t.Fatal(err)
	}
	base, err := Scan(src)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	j := func(p string) string { return filepath.Join(src, p) }
	// In place, same size, right after the scan (the coarse-clock case).
	f, err := os.OpenFile(j("etc/shadow"), os.O_WRONLY, 0)
	must(err)
	_, err = f.WriteAt([]byte("SECRET"), 0)
	must(err)
	must(f.Close())
	must(unix.Chmod(j("suid"), 0o755))                // mode
	must(os.Lchown(j("abs"), 9, 9))                   // owner of a symlink
	must(unix.Lremovexattr(j("ping"), "trusted.dib")) // an xattr gone
	must(os.Remove(j("dangling")))                    // a file gone
	must(os.RemoveAll(j("dev")))                      // a directory with content gone
	must(os.RemoveAll(j("etc/sub")))                  // a directory replaced by a file
	must(os.WriteFile(j("etc/sub"), []byte("now a file"), 0o600))
	must(os.Remove(j("empty"))) // a file replaced by a directory
	must(os.MkdirAll(j("empty/deep"), 0o750))
	must(os.WriteFile(j("empty/deep/x"), []byte("x"), 0o644))
	must(os.Link(j("etc/passwd"), j("passwd-link"))) // a new name for an old file
	must(os.Rename(j("holes"), j("tmp/holes")))      // a rename
	must(os.Symlink("tmp/holes", j("holes")))
	must(unix.Lsetxattr(j("setgid"), "trusted.new", []byte("n"), 0)) // an xattr on a directory
	ts := []unix.Timespec{{Sec: 1500000000, Nsec: 1}, {Sec: 1500000000, Nsec: 1}}
	must(unix.UtimesNanoAt(unix.AT_FDCWD, j("tmp"), ts, 0))
	want := describe(t, src)

	var layer bytes.Buffer
	next, err := WriteLayer(&layer, src, base)
	if err != nil {
		t.Fatal(err)
	}
	if next == nil || len(next.ids) == 0 {
		t.Fatal("no manifest")
	}
	// Unchanged files are not in the layer; changed ones are.
	names := map[string]bool{}
	tr := tar.NewReader(bytes.NewReader(layer.Bytes()))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(err)
		names[h.Name] = true
	}
	for _, n := range []string{"sparse"} { // (etc/a and c lost a name: changed)
		if names[n] {
			t.Errorf("unchanged %s is in the layer", n)
		}
	}
	for _, n := range []string{"etc/shadow", "suid", "abs", "ping", "dangling", "dev", "etc/sub", "empty/deep/x", "passwd-link", "etc/passwd", "tmp/holes"} {
		if !names[n] && !names[n+"/"] {
			t.Errorf("%s is not in the layer (%v)", n, keys(names))
		}
	}

	dst := tmpfsDir(t)
	must(extract(bytes.NewReader(full.Bytes()), dst, false))
	must(extract(bytes.NewReader(layer.Bytes()), dst, true))
	if got := describe(t, dst); got != want {
		t.Errorf("layer restore differs:\n got:\n%s\nwant:\n%s", got, want)
	}

	// A second layer on the restored tree: nothing changed, nothing but
	// the root is in it; then one more change.
	again, err := Scan(dst)
	must(err)
	var empty bytes.Buffer
	if _, err := WriteLayer(&empty, dst, again); err != nil {
		t.Fatal(err)
	}
	tr = tar.NewReader(&empty)
	n := 0
	for {
		if _, err := tr.Next(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 1 {
		t.Errorf("a layer of an unchanged tree has %d entries, want 1 (the root)", n)
	}
}

// TestLayerRefusesStrayWhiteouts: a whiteout only in a layer, never
// through a symlink.
func TestLayerRefusesStrayWhiteouts(t *testing.T) {
	stream := func(name string) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Format: tar.FormatPAX, PAXRecords: map[string]string{paxWhiteout: "1"}}); err != nil {
			t.Fatal(err)
		}
		tw.Close()
		return b.Bytes()
	}
	dst := t.TempDir()
	if err := extract(bytes.NewReader(stream("x")), dst, false); err == nil {
		t.Error("a whiteout in a whole-tree snapshot was accepted")
	}
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "victim"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dst, "link")); err != nil {
		t.Fatal(err)
	}
	if err := extract(bytes.NewReader(stream("link/victim")), dst, true); err == nil {
		t.Error("a whiteout through a symlink was accepted")
	}
	if _, err := os.Stat(filepath.Join(outside, "victim")); err != nil {
		t.Errorf("the whiteout removed a file outside the tree: %v", err)
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestLayerWithoutParent: a layer whose parent entry is gone cannot be
// restored (Chain fails) and Prune removes it.
func TestLayerWithoutParent(t *testing.T) {
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	put := func(key, parent string) *Meta {
		w, err := c.Begin(Meta{Key: key, Step: "s"})
		if err != nil {
			t.Fatal(err)
		}
		w.SetSnapshot(Snapshot{Tree: "mnt", Parent: parent})
		m, err := w.Commit()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	parent := strings.Repeat("ab", 32)
	put(parent, "")
	layer := put(strings.Repeat("cd", 32), parent)
	if chain, err := c.Chain(layer, nil); err != nil || len(chain) != 2 || chain[0].Key != parent {
		t.Fatalf("chain: %v %v", chain, err)
	}
	if _, err := c.Chain(layer, map[string]bool{parent: true}); err == nil {
		t.Error("a chain through an excluded entry was accepted")
	}
	if err := c.Drop(parent); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Chain(layer, nil); err == nil {
		t.Error("a chain without its parent was accepted")
	}
	removed, err := c.Prune(0, 0, time.Now())
	if err != nil || len(removed) != 1 || removed[0].Key != layer.Key {
		t.Errorf("prune removed %v (%v), want the orphan layer", removed, err)
	}
}
