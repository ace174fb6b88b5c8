package cache

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkSnapshot measures saving and restoring a real tree, the numbers
// behind the choice of mechanism (snapshot.go). DIB_CACHE_BENCH_TREE names
// the tree (a build's tree, e.g. copied from an image); the cache and the
// restore target are beside it unless DIB_CACHE_BENCH_CACHE names the
// cache's filesystem.
//
//	sudo DIB_CACHE_BENCH_TREE=/mnt/tree go test -run - -bench Snapshot -benchtime 1x ./runtime/cache
func BenchmarkSnapshot(b *testing.B) {
	tree := os.Getenv("DIB_CACHE_BENCH_TREE")
	if tree == "" {
		b.Skip("DIB_CACHE_BENCH_TREE is not set")
	}
	cacheDir := os.Getenv("DIB_CACHE_BENCH_CACHE")
	if cacheDir == "" {
		cacheDir = b.TempDir()
	}
	restoreParent := filepath.Dir(tree)
	b.Run("go-tar-zstd", func(b *testing.B) {
		c, err := Open(filepath.Join(cacheDir, "go"))
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			w, err := c.Begin(Meta{Key: strings.Repeat("cd", 32)})
			if err != nil {
				b.Fatal(err)
			}
			if err := w.AddTree("tree.tar.zst", tree); err != nil {
				b.Fatal(err)
			}
			m, err := w.Commit()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(m.Size())/1e6, "MB")
			t1 := time.Now()
			dst, _ := os.MkdirTemp(restoreParent, "restore-")
			if err := c.Extract(m, "tree.tar.zst", dst); err != nil {
				b.Fatal(err)
			}
			report(b, t0, t1)
			b.StopTimer()
			os.RemoveAll(dst)
			c.Drop(m.Key)
			b.StartTimer()
		}
	})
	b.Run("gnu-tar-zstd-cli", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			out := filepath.Join(cacheDir, "gnu.tar.zst")
			t0 := time.Now()
			sh(b, "tar -C "+tree+" --numeric-owner --xattrs --xattrs-include='*' --acls --sparse --one-file-system -cf - . | zstd -q -1 -T2 -o "+out+" && sync "+out)
			t1 := time.Now()
			b.ReportMetric(size(b, out), "MB")
			dst, _ := os.MkdirTemp(restoreParent, "restore-")
			sh(b, "zstd -q -d -T2 -c "+out+" | tar -C "+dst+" --numeric-owner --xattrs --xattrs-include='*' --acls -xpf -")
			report(b, t0, t1)
			b.StopTimer()
			os.RemoveAll(dst)
			os.Remove(out)
			b.StartTimer()
		}
	})
	b.Run("cp-a", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			out := filepath.Join(cacheDir, "cp")
			t0 := time.Now()
			sh(b, "cp -a --reflink=auto --sparse=always "+tree+" "+out+" && sync")
			t1 := time.Now()
			b.ReportMetric(size(b, out), "MB")
			dst, _ := os.MkdirTemp(restoreParent, "restore-")
			sh(b, "cp -a --reflink=auto --sparse=always "+out+"/. "+dst)
			report(b, t0, t1)
			b.StopTimer()
			os.RemoveAll(dst)
			os.RemoveAll(out)
			b.StartTimer()
		}
	})
}

func sh(b *testing.B, cmd string) {
	b.Helper()
	if out, err := exec.Command("bash", "-c", cmd).CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", cmd, err, out)
	}
}

func report(b *testing.B, t0, t1 time.Time) {
	b.ReportMetric(t1.Sub(t0).Seconds(), "save-s")
	b.ReportMetric(time.Since(t1).Seconds(), "restore-s")
}

func size(b *testing.B, p string) float64 {
	out, err := exec.Command("du", "-sb", p).Output()
	if err != nil {
		b.Fatal(err)
	}
	var n float64
	fmt.Sscan(string(out), &n)
	return n / 1e6
}

// BenchmarkDiskSnapshot measures keeping a finished disk image (the final
// state of a disk build) compressed and plain: DIB_CACHE_BENCH_IMAGE names
// the image (e.g. a build's raw output); the cache is in a temporary
// directory unless DIB_CACHE_BENCH_CACHE names its filesystem, the restore
// goes beside the image.
//
//	sudo DIB_CACHE_BENCH_IMAGE=out/debian-vm.raw go test -run - -bench DiskSnapshot -benchtime 1x ./runtime/cache
func BenchmarkDiskSnapshot(b *testing.B) {
	img := os.Getenv("DIB_CACHE_BENCH_IMAGE")
	if img == "" {
		b.Skip("DIB_CACHE_BENCH_IMAGE is not set")
	}
	cacheDir := os.Getenv("DIB_CACHE_BENCH_CACHE")
	if cacheDir == "" {
		cacheDir = b.TempDir()
	}
	for _, name := range []string{"disk.tar.zst", "disk.tar"} {
		b.Run(name, func(b *testing.B) {
			c, err := Open(filepath.Join(cacheDir, "disk"))
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				w, err := c.Begin(Meta{Key: strings.Repeat("ab", 32)})
				if err != nil {
					b.Fatal(err)
				}
				if err := w.AddPaths(name, filepath.Dir(img), []string{filepath.Base(img)}); err != nil {
					b.Fatal(err)
				}
				m, err := w.Commit()
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(m.Size())/1e6, "MB")
				t1 := time.Now()
				dst, _ := os.MkdirTemp(filepath.Dir(img), "restore-")
				if err := c.Extract(m, name, dst); err != nil {
					b.Fatal(err)
				}
				report(b, t0, t1)
				b.StopTimer()
				os.RemoveAll(dst)
				c.Drop(m.Key)
				b.StartTimer()
			}
		})
	}
}
