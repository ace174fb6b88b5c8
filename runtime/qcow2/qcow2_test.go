package qcow2

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needTool skips when a host tool is missing, except under
// DIB_REQUIRE_INTEGRATION=1 where a missing tool is a failure.
func needTool(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
			tb.Fatalf("%s not installed (DIB_REQUIRE_INTEGRATION=1): install qemu-utils", name)
		}
		tb.Skipf("%s not installed", name)
	}
	return p
}

// piece is data written at an offset of a sparse test image.
type piece struct {
	off  int64
	data []byte
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func makeRaw(t testing.TB, dir string, size int64, pieces []piece) string {
	t.Helper()
	p := filepath.Join(dir, "disk.raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for _, pc := range pieces {
		if _, err := f.WriteAt(pc.data, pc.off); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func TestConvertQemuImgAgrees(t *testing.T) {
	qemuImg := needTool(t, "qemu-img")
	const mib = 1 << 20
	cases := []struct {
		name   string
		size   int64
		pieces []piece
	}{
		{"empty", 0, nil},
		{"all-hole", 64 * mib, nil},
		{"unaligned-size", 3*clusterSize + 1000, []piece{{3 * clusterSize, textBytes(1000)}}},
		{"mixed", 1536*mib + 12345, []piece{
			{0, randomBytes(1, 3*mib)},
			{5 * mib, make([]byte, 2*mib)}, // written zeros: dropped
			{8*mib + 100, textBytes(700 * 1024)},
			{512*mib - 4096, randomBytes(2, 8192)}, // crosses an L2 table boundary
			{1536*mib + 1, textBytes(12344)},       // last partial cluster
		}},
	}
	for _, c := range cases {
		for _, compress := range []bool{false, true} {
			name := c.name
			if compress {
				name += "/compressed"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				raw := makeRaw(t, dir, c.size, c.pieces)
				out := filepath.Join(dir, "disk.qcow2")
				st, err := Convert(context.Background(), raw, out, Options{Compress: compress, Workers: 3})
				if err != nil {
					t.Fatal(err)
				}
				if st.VirtualSize != (c.size+511)&^511 {
					t.Errorf("virtual size %d, want %d", st.VirtualSize, c.size)
				}
				fi, err := os.Stat(out)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Size() != st.FileSize {
					t.Errorf("file size %d, stats say %d", fi.Size(), st.FileSize)
				}
				if b, err := exec.Command(qemuImg, "check", "-f", "qcow2", out).CombinedOutput(); err != nil || !strings.Contains(string(b), "No errors were found") {
					t.Fatalf("qemu-img check: %v\n%s", err, b)
				}
				if b, err := exec.Command(qemuImg, "compare", "-f", "raw", "-F", "qcow2", raw, out).CombinedOutput(); err != nil {
					t.Fatalf("qemu-img compare: %v\n%s", err, b)
				}
				if _, err := os.Stat(out + ".tmp-qcow2"); !os.IsNotExist(err) {
					t.Errorf("temporary file left behind")
				}
			})
		}
	}
}

func TestZeroClustersDropped(t *testing.T) {
	dir := t.TempDir()
	raw := makeRaw(t, dir, 4*clusterSize, []piece{
		{0, make([]byte, 2*clusterSize)},      // allocated zeros
		{2 * clusterSize, randomBytes(3, 10)}, // one data cluster
		{3*clusterSize + 7, textBytes(10)},    // another
	})
	st, err := Convert(context.Background(), raw, filepath.Join(dir, "o.qcow2"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st.DataClusters != 2 || st.ZeroClusters != 2 {
		t.Errorf("data %d zero %d, want 2 and 2", st.DataClusters, st.ZeroClusters)
	}
	// header + 2 data + 1 L2 + 1 L1 + 1 refcount table + 1 refcount block
	if want := int64(7 * clusterSize); st.FileSize != want {
		t.Errorf("file size %d, want %d", st.FileSize, want)
	}
}

func TestHolesAreNotRead(t *testing.T) {
	dir := t.TempDir()
	const size = 8 << 30 // 8 GiB of hole, one cluster of data
	raw := makeRaw(t, dir, size, []piece{{4 << 30, randomBytes(4, 100)}})
	st, err := Convert(context.Background(), raw, filepath.Join(dir, "o.qcow2"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st.BytesReadFrom > 1<<20 {
		t.Errorf("read %d bytes of a sparse image; holes should be skipped", st.BytesReadFrom)
	}
	if st.DataClusters != 1 {
		t.Errorf("data clusters %d, want 1", st.DataClusters)
	}
}

func TestCompressionDeterministic(t *testing.T) {
	dir := t.TempDir()
	raw := makeRaw(t, dir, 32<<20, []piece{{0, textBytes(5 << 20)}, {9 << 20, randomBytes(5, 3<<20)}})
	var sums [][]byte
	for _, workers := range []int{1, 2, 7} {
		out := filepath.Join(dir, "o.qcow2")
		if _, err := Convert(context.Background(), raw, out, Options{Compress: true, Workers: workers}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, b)
	}
	for i := 1; i < len(sums); i++ {
		if !bytes.Equal(sums[0], sums[i]) {
			t.Errorf("output with different worker counts differs")
		}
	}
}

func TestConvertErrorLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "o.qcow2")
	if _, err := Convert(context.Background(), filepath.Join(dir, "missing.raw"), out, Options{}); err == nil {
		t.Fatal("want an error for a missing input")
	}
	raw := makeRaw(t, dir, 64<<20, []piece{{0, randomBytes(6, 32<<20)}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Convert(ctx, raw, out, Options{Compress: true}); err == nil {
		t.Fatal("want an error for a cancelled context")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "disk.raw" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// BenchmarkConvertVsQemuImg converts the same sparse image natively and with
// `qemu-img convert` and reports the wall-time ratio native/qemu-img
// (below 1 means the native writer is faster).
//
//	go test ./runtime/qcow2 -run '^$' -bench ConvertVsQemuImg -benchtime 3x
func BenchmarkConvertVsQemuImg(b *testing.B) {
	qemuImg := needTool(b, "qemu-img")
	dir := b.TempDir()
	var pieces []piece
	for i := range 48 { // 384 MiB of data spread over a 2 GiB image
		data := randomBytes(uint64(i), 4<<20)
		if i%2 == 0 {
			data = textBytes(4 << 20)
		}
		pieces = append(pieces, piece{int64(i) * 40 << 20, data}, piece{int64(i)*40<<20 + 4<<20, data})
	}
	raw := makeRaw(b, dir, 2<<30, pieces)
	for _, compress := range []bool{false, true} {
		name := "plain"
		args := []string{"convert", "-f", "raw", "-O", "qcow2"}
		if compress {
			name = "compressed"
			args = append(args, "-c")
		}
		b.Run(name, func(b *testing.B) {
			var native, qemu time.Duration
			for i := range b.N {
				// Alternate who goes first: the page cache and writeback
				// favour whichever runs second.
				// Both write a new file: qemu-img truncates an existing
				// output in place, which is cheaper than a fresh file.
				os.Remove(filepath.Join(dir, "n.qcow2"))
				os.Remove(filepath.Join(dir, "q.qcow2"))
				for k := range 2 {
					t0 := time.Now()
					if (i+k)%2 == 0 {
						if _, err := Convert(context.Background(), raw, filepath.Join(dir, "n.qcow2"), Options{Compress: compress}); err != nil {
							b.Fatal(err)
						}
						native += time.Since(t0)
					} else {
						if out, err := exec.Command(qemuImg, append(args, raw, filepath.Join(dir, "q.qcow2"))...).CombinedOutput(); err != nil {
							b.Fatalf("%v\n%s", err, out)
						}
						qemu += time.Since(t0)
					}
				}
			}
			b.ReportMetric(native.Seconds()/float64(b.N), "native-s/op")
			b.ReportMetric(qemu.Seconds()/float64(b.N), "qemu-img-s/op")
			b.ReportMetric(native.Seconds()/qemu.Seconds(), "native/qemu-img")
		})
	}
}

// patternDisk is a raw disk whose cluster i is filled with byte i%250+1,
// generated on the fly so a large image costs no input file.
type patternDisk struct{}

func (patternDisk) ReadAt(p []byte, off int64) (int, error) {
	for i := range p {
		p[i] = byte((off+int64(i))/clusterSize%250 + 1)
	}
	return len(p), nil
}

// TestRefcountBlocksBeyond2GiB writes a file larger than one refcount
// block covers (32768 clusters = 2 GiB of host file), so the refcount
// table and several blocks must count themselves right.
func TestRefcountBlocksBeyond2GiB(t *testing.T) {
	qemuImg := needTool(t, "qemu-img")
	qemuIO := needTool(t, "qemu-io")
	if testing.Short() {
		t.Skip("writes 2.2 GiB")
	}
	const size = 2200 << 20
	out := filepath.Join(t.TempDir(), "big.qcow2")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	st, err := Write(context.Background(), f, patternDisk{}, size, Options{})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if st.FileSize <= 2<<30 {
		t.Fatalf("file %d bytes: not beyond one refcount block", st.FileSize)
	}
	if b, err := exec.Command(qemuImg, "check", out).CombinedOutput(); err != nil || !strings.Contains(string(b), "No errors were found") {
		t.Fatalf("qemu-img check: %v\n%s", err, b)
	}
	for _, cl := range []int64{0, 1, 249, 250, 32767, 32768, size/clusterSize - 1} {
		pat := fmt.Sprintf("0x%02x", cl%250+1)
		cmd := exec.Command(qemuIO, "-f", "qcow2", "-c", fmt.Sprintf("read -P %s %d 64k", pat, cl*clusterSize), out)
		if b, err := cmd.CombinedOutput(); err != nil || strings.Contains(string(b), "Pattern verification failed") {
			t.Errorf("cluster %d: %v\n%s", cl, err, b)
		}
	}
}
