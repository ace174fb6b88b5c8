package sde

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dibuild/dib/compiler/plan"
)

func TestClamp(t *testing.T) {
	const epoch = 1700000000
	for _, c := range []struct {
		name            string
		sec, nsec       int64
		wantSec, wantNs int64
	}{
		{"older keeps its time", epoch - 1, 999, epoch - 1, 999},
		{"much older (1970)", 0, 0, 0, 0},
		{"the epoch itself", epoch, 0, epoch, 0},
		{"within the epoch's second", epoch, 1, epoch, 0},
		{"newer gets the epoch", epoch + 1, 0, epoch, 0},
		{"far future", 1 << 40, 5, epoch, 0},
	} {
		if s, ns := Clamp(c.sec, c.nsec, epoch); s != c.wantSec || ns != c.wantNs {
			t.Errorf("%s: Clamp(%d, %d) = %d, %d; want %d, %d", c.name, c.sec, c.nsec, s, ns, c.wantSec, c.wantNs)
		}
	}
	// Epoch 0 (an explicit source-date-epoch: 0) sets every later time to 1970.
	if s, _ := Clamp(1700000000, 0, 0); s != 0 {
		t.Errorf("epoch 0: %d", s)
	}
}

func touch(t *testing.T, p string, at int64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, time.Unix(at, 0), time.Unix(at, 0)); err != nil {
		t.Fatal(err)
	}
}

// TestFromPackages: the newest md5sums file of the dpkg database, whatever
// else (lists written at install time, files the build wrote) is newer.
func TestFromPackages(t *testing.T) {
	root := t.TempDir()
	info := filepath.Join(root, "var/lib/dpkg/info")
	touch(t, filepath.Join(info, "base-files.md5sums"), 1783019100)
	touch(t, filepath.Join(info, "libc6:amd64.md5sums"), 1760000000)
	touch(t, filepath.Join(info, "zlib1g:amd64.md5sums"), 1700000000)
	touch(t, filepath.Join(info, "base-files.list"), time.Now().Unix())
	touch(t, filepath.Join(info, "base-files.postinst"), time.Now().Unix())
	touch(t, filepath.Join(root, "etc/hostname"), time.Now().Unix())
	r, err := Resolve(root, plan.Epoch{SourceDateEpochFrom: plan.EpochFromPackages})
	if err != nil {
		t.Fatal(err)
	}
	if r.Epoch != 1783019100 || r.Why != "the newest of 3 installed packages, base-files" {
		t.Errorf("got %+v", r)
	}

	// No dpkg database, or an empty one: 0.
	empty := t.TempDir()
	if err := os.MkdirAll(filepath.Join(empty, "var/lib/dpkg/info"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{t.TempDir(), empty} {
		r, err := FromPackages(dir)
		if err != nil || r.Epoch != 0 || r.Why == "" {
			t.Errorf("%s: %+v, %v", dir, r, err)
		}
	}
}

func TestResolveExplicit(t *testing.T) {
	root := t.TempDir()
	touch(t, filepath.Join(root, "var/lib/dpkg/info/base-files.md5sums"), 1783019100)
	for _, v := range []int64{0, 1700000000} {
		r, err := Resolve(root, plan.Epoch{SourceDateEpoch: v})
		if err != nil || r.Epoch != v {
			t.Errorf("source-date-epoch %d: %+v, %v", v, r, err)
		}
	}
	if _, err := Resolve(root, plan.Epoch{SourceDateEpochFrom: "moon"}); err == nil {
		t.Error("an unknown source was accepted")
	}
}
