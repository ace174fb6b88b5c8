package main

import (
	"os"
	"strings"
	"testing"

	"github.com/dibuild/dib/runtime/cache"
)

// fakeCache writes two entries: a snapshot-like one and an output one.
func fakeCache(t *testing.T) (string, []*cache.Meta) {
	t.Helper()
	dir := t.TempDir()
	c, err := cache.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []*cache.Meta
	for i, title := range []string{"bootstrap root filesystem", "output qcow2"} {
		w, err := c.Begin(cache.Meta{Key: strings.Repeat(string("ab"[i]), 64), Step: strings.Repeat("c", 64), Kind: "phase", Title: title, Image: "img", Index: i + 1})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			w.SetPackages([]string{"apt=2.6.1", "base-files=12.4"})
		}
		f, err := w.Create("payload", 0o600)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte(strings.Repeat("x", 1000)))
		f.Close()
		m, err := w.Commit()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return dir, out
}

func TestCacheCommands(t *testing.T) {
	dir, metas := fakeCache(t)
	code, stdout, stderr := runDib(t, "cache", "ls", "--cache-dir", dir)
	if code != 0 || !strings.Contains(stdout, "1. bootstrap root filesystem (cccccccccccc)") || !strings.Contains(stdout, "2 entries, 2.0 KiB") {
		t.Fatalf("ls: %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "record, 2 packages") || strings.Contains(stdout, "apt=2.6.1") {
		t.Errorf("ls: the bootstrap's package count, not its packages:\n%s", stdout)
	}
	if _, stdout, _ = runDib(t, "cache", "ls", "--packages", "--cache-dir", dir); !strings.Contains(stdout, "\n  apt=2.6.1 base-files=12.4\n") {
		t.Errorf("ls --packages:\n%s", stdout)
	}
	if code, stdout, _ = runDib(t, "cache", "verify", "--cache-dir", dir); code != 0 || !strings.Contains(stdout, "verified 2 entries, 0 corrupt") {
		t.Fatalf("verify: %d %s", code, stdout)
	}
	c, _ := cache.Open(dir)
	os.WriteFile(c.Path(metas[1].Key, "payload"), []byte("tampered"), 0o600)
	code, stdout, stderr = runDib(t, "cache", "verify", "--cache-dir", dir)
	if code != exitFailed || !strings.Contains(stderr, "corrupt: bbbbbbbbbbbb (img, step \"output qcow2\")") || !strings.Contains(stdout, "1 corrupt (dropped)") {
		t.Fatalf("verify of a tampered entry: %d\n%s%s", code, stdout, stderr)
	}
	if m, _ := c.Get(metas[1].Key); m != nil {
		t.Error("the corrupt entry is still there")
	}
	if code, _, stderr = runDib(t, "cache", "prune", "--cache-dir", dir, "--max-size", "1.5x"); code != exitUsage {
		t.Errorf("bad --max-size: %d %s", code, stderr)
	}
	if code, stdout, _ = runDib(t, "cache", "prune", "--cache-dir", dir, "--older-than", "1d"); code != 0 || !strings.Contains(stdout, "removed 0 entries") {
		t.Errorf("prune --older-than 1d: %d %s", code, stdout)
	}
	if code, stdout, _ = runDib(t, "cache", "prune", "--cache-dir", dir, "--max-size", "500B"); code != 0 || !strings.Contains(stdout, "removed 1 entries, 1000 B") {
		t.Errorf("prune --max-size: %d %s", code, stdout)
	}
	if code, stdout, _ = runDib(t, "cache", "ls", "--cache-dir", dir); !strings.Contains(stdout, "0 entries") {
		t.Errorf("ls after prune: %d %s", code, stdout)
	}
	if code, stdout, _ = runDib(t, "cache", "ls", "--cache-dir", dir+"/none"); code != 0 || !strings.Contains(stdout, "is empty") {
		t.Errorf("ls of no cache: %d %s", code, stdout)
	}
}
