package cache

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOutputFile: an output kept whole in an entry's plain outputs
// payload is found at its offset there, under a directory and beside
// another output; one stored sparse, one not in the entry and a
// compressed payload are refused.
func TestOutputFile(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	data := bytes.Repeat([]byte("qcow2 bytes "), 100000)
	os.WriteFile(filepath.Join(src, "a.sha256"), []byte("sum\n"), 0o644)
	os.WriteFile(filepath.Join(src, "sub/img.qcow2"), data, 0o644)
	f, _ := os.Create(filepath.Join(src, "sparse.img"))
	f.WriteAt([]byte("data"), 8<<20)
	f.Close()
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rels := []string{"a.sha256", "sparse.img", "sub/img.qcow2"}
	commit := func(key, name string) *Meta {
		w, _ := c.Begin(Meta{Key: strings.Repeat(key, 64)})
		if err := w.AddPaths(name, src, rels); err != nil {
			t.Fatal(err)
		}
		w.SetOutputs(rels)
		m, err := w.Commit()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := commit("a", OutputsArchive)
	pf, off, size, err := c.OutputFile(m, "sub/img.qcow2")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(io.NewSectionReader(pf, off, size))
	pf.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes at %d (%v), not the output's %d", len(got), off, err, len(data))
	}
	for _, rel := range []string{"sparse.img", "missing.qcow2"} {
		if _, _, _, err := c.OutputFile(m, rel); err == nil {
			t.Errorf("%s: no error", rel)
		}
	}
	z := commit("b", OutputsArchive+".zst")
	if _, _, _, err := c.OutputFile(z, "sub/img.qcow2"); err == nil || !strings.Contains(err.Error(), "no plain copy") {
		t.Errorf("compressed payload: %v", err)
	}
}
