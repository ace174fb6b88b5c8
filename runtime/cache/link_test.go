package cache

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLinkedPayload: an entry may hold another entry's payload file as a
// hard link (the raw output's entry holds the disk snapshot's image), in
// either archive encoding; both restore the same bytes, holes stay holes
// in the archive, and a corrupted payload is found from either entry.
func TestLinkedPayload(t *testing.T) {
	for _, name := range []string{"disk.tar.zst", "disk.tar"} {
		t.Run(name, func(t *testing.T) {
			src := t.TempDir()
			img := filepath.Join(src, "img.raw")
			f, err := os.Create(img)
			if err != nil {
				t.Fatal(err)
			}
			data := bytes.Repeat([]byte("image data "), 10000)
			f.WriteAt(data, 64<<20)
			f.Truncate(128 << 20)
			f.Close()
			c, err := Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			w, _ := c.Begin(Meta{Key: strings.Repeat("ab", 32)})
			if err := w.AddPaths(name, src, []string{"img.raw"}); err != nil {
				t.Fatal(err)
			}
			w.SetSnapshot(Snapshot{Disk: "img.raw"})
			disk, err := w.Commit()
			if err != nil {
				t.Fatal(err)
			}
			if disk.Archive("disk") != name {
				t.Errorf("Archive(disk) = %q, want %q", disk.Archive("disk"), name)
			}
			if disk.Size() > 1<<20 {
				t.Errorf("the payload is %d bytes: holes were stored", disk.Size())
			}
			out := "outputs" + strings.TrimPrefix(name, "disk")
			w, _ = c.Begin(Meta{Key: strings.Repeat("cd", 32)})
			if err := w.Link(out, disk, name); err != nil {
				t.Fatal(err)
			}
			w.SetOutputs([]string{"x/img.raw"})
			w.SetStored([]string{"img.raw"})
			raw, err := w.Commit()
			if err != nil {
				t.Fatal(err)
			}
			a, _ := os.Stat(c.Path(disk.Key, name))
			b, _ := os.Stat(c.Path(raw.Key, raw.Archive("outputs")))
			if a == nil || b == nil || !os.SameFile(a, b) {
				t.Fatalf("the linked payload is not the same file")
			}
			for _, m := range []*Meta{disk, raw} {
				if err := c.Verify(m); err != nil {
					t.Error(err)
				}
				dst := t.TempDir()
				if err := c.Extract(m, m.Files[0].Name, dst); err != nil {
					t.Fatal(err)
				}
				got, err := os.ReadFile(filepath.Join(dst, "img.raw"))
				if err != nil || len(got) != 128<<20 || !bytes.Equal(got[64<<20:64<<20+len(data)], data) {
					t.Errorf("restored image differs (%v)", err)
				}
			}
			// One payload, two records: a flipped byte is found from both.
			p, _ := os.OpenFile(c.Path(disk.Key, name), os.O_RDWR, 0)
			p.WriteAt([]byte{0xff}, 700)
			p.Close()
			for _, m := range []*Meta{disk, raw} {
				if err := c.Extract(m, m.Files[0].Name, t.TempDir()); !errors.Is(err, ErrCorrupt) {
					t.Errorf("%s: corrupt payload extracted: %v", m.Key[:4], err)
				}
			}
		})
	}
}
