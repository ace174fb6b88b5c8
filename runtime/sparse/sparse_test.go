package sparse

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestExtents writes data at block-aligned and unaligned places of a
// sparse file and checks the extents found, aligned and not.
func TestExtents(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const size = 1 << 20
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{4096 + 10, 8192, 65536 * 3, size - 1} {
		if _, err := f.WriteAt([]byte{1}, off); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Extents(f, size, 1)
	if err != nil {
		t.Fatal(err)
	}
	// The filesystem keeps data in blocks (4 KiB on ext4 and tmpfs).
	want := []Extent{{4096, 12288}, {196608, 200704}, {size - 4096, size}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("extents %v, want %v", got, want)
	}
	got, _ = Extents(f, size, 65536)
	want = []Extent{{0, 65536}, {196608, 262144}, {size - 65536, size}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("extents aligned to 64 KiB %v, want %v", got, want)
	}
	got, _ = Extents(f, 200000, 65536)
	want = []Extent{{0, 65536}, {196608, 200000}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("extents of the first 200000 bytes %v, want %v", got, want)
	}
	if got, _ := Extents(f, 0, 1); got != nil {
		t.Fatalf("extents of nothing: %v", got)
	}
}
