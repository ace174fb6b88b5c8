package disk

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkAssemble assembles a GPT ESP+BIOS-boot+root disk from the tree
// in $DIB_BENCH_TREE (or a generated 256 MiB tree) and reports the tree's
// MiB per second of wall time.
//
//	DIB_BENCH_TREE=/path/to/rootfs go test ./runtime/disk -run '^$' -bench Assemble -benchtime 3x
func BenchmarkAssemble(b *testing.B) {
	needHost(b, assemblyTools...)
	tree := os.Getenv("DIB_BENCH_TREE")
	if tree == "" {
		tree = filepath.Join(b.TempDir(), "tree")
		for i := range 64 {
			d := filepath.Join(tree, "usr/share/bench", strconv.Itoa(i))
			os.MkdirAll(d, 0o755)
			for j := range 16 {
				os.WriteFile(filepath.Join(d, strconv.Itoa(j)), []byte(strings.Repeat(strconv.Itoa(i*j)+"\n", 256<<10/8)), 0o644)
			}
		}
	}
	out, err := exec.Command("du", "-sm", "--apparent-size", tree).Output()
	if err != nil {
		b.Fatal(err)
	}
	treeMiB, _ := strconv.ParseFloat(strings.Fields(string(out))[0], 64)
	sizeMiB := int64(treeMiB*1.4) + 400
	l := efiLayout(sizeMiB)
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		dir := b.TempDir()
		t0 := time.Now()
		if _, err := Assemble(context.Background(), Input{Layout: l, Tree: tree, Output: filepath.Join(dir, "disk.raw"), WorkDir: dir}); err != nil {
			b.Fatal(err)
		}
		total += time.Since(t0)
		os.RemoveAll(dir)
	}
	b.ReportMetric(treeMiB, "tree-MiB")
	b.ReportMetric(treeMiB/(total.Seconds()/float64(b.N)), "MiB/s")
}
