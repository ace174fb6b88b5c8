package cache

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestSnapshotKilled kills (SIGKILL) a process that writes snapshot
// entries one after the other, while it is writing one: every entry
// visible afterwards is whole (record and payload digests match), and the
// next lock holder removes the partial one the writer left in tmp/.
func TestSnapshotKilled(t *testing.T) {
	if dir := os.Getenv("DIB_CACHE_KILL_CHILD"); dir != "" {
		// Write entries one after the other until killed.
		c, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; ; i++ {
			w, err := c.Begin(Meta{Key: fmt.Sprintf("%064x", i), Step: "s"})
			if err != nil {
				t.Fatal(err)
			}
			if err := w.AddTree("tree.tar.zst", os.Getenv("DIB_CACHE_KILL_TREE")); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	cacheDir, tree := t.TempDir(), t.TempDir()
	f, err := os.Create(filepath.Join(tree, "random"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, 16<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSnapshotKilled$")
	cmd.Env = append(os.Environ(), "DIB_CACHE_KILL_CHILD="+cacheDir, "DIB_CACHE_KILL_TREE="+tree)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it while it writes a payload, after it committed a few entries.
	deadline := time.Now().Add(time.Minute)
	for {
		ents, _ := os.ReadDir(filepath.Join(cacheDir, "entries"))
		var partial int64
		filepath.Walk(filepath.Join(cacheDir, "tmp"), func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				partial += fi.Size()
			}
			return nil
		})
		if len(ents) >= 2 && partial > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the child never wrote two entries")
		}
		time.Sleep(time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	c, err := Open(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	// Every entry that is visible is whole: its record and payload match.
	list, err := c.List()
	if err != nil || len(list) < 2 {
		t.Fatalf("entries: %d, %v", len(list), err)
	}
	for _, m := range list {
		if err := c.Verify(m); err != nil || m.Step != "s" || len(m.Files) != 1 {
			t.Errorf("entry %s after SIGKILL: %+v %v", m.Key, m, err)
		}
	}
	if err := c.Lock(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	defer c.Unlock()
	if ents, _ := os.ReadDir(filepath.Join(cacheDir, "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ still holds %d partial entries after the next lock", len(ents))
	}
}

// TestOwnerNamesTmp: every directory a Cache with an Owner makes under
// tmp/ (an entry being written, an entry being dropped) matches
// TmpPattern(owner), which a build records in its ledger; another
// owner's pattern matches none of them.
func TestOwnerNamesTmp(t *testing.T) {
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c.Owner = "dib-0123abcd"
	w, err := c.Begin(Meta{Key: fmt.Sprintf("%064x", 1), Step: "s"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	tmp := filepath.Join(c.Dir, "tmp")
	mine, _ := filepath.Glob(filepath.Join(tmp, TmpPattern(c.Owner)))
	other, _ := filepath.Glob(filepath.Join(tmp, TmpPattern("dib-0123")))
	if all, _ := os.ReadDir(tmp); len(all) != 1 || len(mine) != 1 || len(other) != 0 {
		t.Errorf("tmp/ holds %d, the owner's pattern matches %v, another's %v", len(all), mine, other)
	}
	if got := c.tmpPrefix("drop-"); got != c.Owner+"-drop-" {
		t.Errorf("drop prefix %q", got)
	}
}

// TestPlaceRecordsStamps: Place names each stamp file to Record before it
// writes it (a build's ledger: the stamp of an output a killed build
// wrote is reclaimed with the output).
func TestPlaceRecordsStamps(t *testing.T) {
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := os.WriteFile(filepath.Join(out, "img.raw"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var recorded []string
	c.Record = func(p string) error {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s recorded after it was written", p)
		}
		recorded = append(recorded, p)
		return nil
	}
	if err := c.Place(&Meta{Key: fmt.Sprintf("%064x", 2), Outputs: []string{"img.raw"}}, out); err != nil {
		t.Fatal(err)
	}
	stamps, _ := filepath.Glob(filepath.Join(c.Dir, "placed", "*"))
	if len(recorded) != 1 || len(stamps) != 1 || recorded[0] != stamps[0] {
		t.Errorf("recorded %v, stamps %v", recorded, stamps)
	}
}

// TestKeyWriterKilled: a build killed while it makes the cache's key (its
// key file written, not yet linked into place) leaves that file only under
// tmp/ with its owner's prefix, which `dib clean` removes through the
// build's ledger (TmpPattern); the next Open makes a whole key.
func TestKeyWriterKilled(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"tmp", "entries"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	half := &Cache{Dir: dir, Owner: "dib-0123"}
	left, err := half.keyTemp(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	ok, err := filepath.Match(filepath.Join(dir, "tmp", TmpPattern(half.Owner)), left)
	if err != nil || !ok {
		t.Fatalf("the key being made is at %s, not under tmp/ as %s", left, TmpPattern(half.Owner))
	}
	os.Remove(left) // what dib clean does with the ledger's pattern
	c, err := OpenOwned(dir, "dib-4567")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.key) != 32 {
		t.Fatalf("key of %d bytes", len(c.key))
	}
	var rest []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Base(p) != "hmac.key" {
			rest = append(rest, p)
		}
		return nil
	})
	if len(rest) > 0 {
		t.Errorf("the cache holds %v besides its key", rest)
	}
}
