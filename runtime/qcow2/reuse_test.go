package qcow2

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// convertIndexed converts raw compressed with ref, returning the image's
// bytes, its index and the stats.
func convertIndexed(t *testing.T, raw, out string, ref *Reference) ([]byte, *Index, Stats) {
	t.Helper()
	var x Index
	st, err := Convert(context.Background(), raw, out, Options{Compress: true, Workers: 3, Reuse: ref, Index: &x})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b, &x, st
}

func encode(t *testing.T, x *Index) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := x.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestReuseGivesTheSameImage: an image converted with a reference to an
// earlier one is the file a conversion without it writes, byte for byte,
// with the same index; every cluster the earlier image had (compressed or
// stored plain, moved or in place) is copied, the others deflated. A
// stored form damaged in the reference is deflated again, not copied.
func TestReuseGivesTheSameImage(t *testing.T) {
	dir := t.TempDir()
	const mib = 1 << 20
	first := []piece{
		{0, textBytes(2 * mib)},                   // 32 compressible clusters
		{4 * mib, randomBytes(7, mib)},            // 16 stored plain
		{8 * mib, randomBytes(8, 3*clusterSize)},  // 3 plain, moved below
		{12 * mib, textBytes(clusterSize + 1000)}, // 2 clusters
	}
	old := makeRaw(t, dir, 16*mib, first)
	oldImg, oldIdx, st := convertIndexed(t, old, filepath.Join(dir, "old.qcow2"), nil)
	if st.DataClusters != 53 || st.Reused != 0 || len(oldIdx.Clusters) != 53 {
		t.Fatalf("first image: %d data clusters, %d reused, %d indexed; want 53, 0, 53", st.DataClusters, st.Reused, len(oldIdx.Clusters))
	}
	// The second disk: the same text and noise, one text cluster and one
	// noise cluster changed, the three plain clusters moved, new data.
	os.Remove(old)
	second := []piece{
		{0, textBytes(2 * mib)},
		{clusterSize * 5, []byte("changed")},
		{4 * mib, randomBytes(7, mib)},
		{4*mib + 3*clusterSize, []byte("changed too")},
		{10 * mib, randomBytes(8, 3*clusterSize)},
		{12 * mib, textBytes(clusterSize + 1000)},
		{14 * mib, randomBytes(9, 2*clusterSize)},
	}
	raw := makeRaw(t, dir, 16*mib, second)
	ref, err := NewReference(oldIdx, bytes.NewReader(oldImg), 0, int64(len(oldImg)))
	if err != nil {
		t.Fatal(err)
	}
	want, wantIdx, _ := convertIndexed(t, raw, filepath.Join(dir, "cold.qcow2"), nil)
	got, gotIdx, st := convertIndexed(t, raw, filepath.Join(dir, "reused.qcow2"), ref)
	if !bytes.Equal(got, want) {
		t.Fatal("the image written with a reference differs from the one written without")
	}
	if !bytes.Equal(encode(t, gotIdx), encode(t, wantIdx)) {
		t.Fatal("the indexes differ")
	}
	// 55 data clusters: 2 changed and 2 new are deflated, 51 copied.
	if st.DataClusters != 55 || st.Reused != 51 {
		t.Fatalf("%d data clusters, %d reused; want 55 and 51", st.DataClusters, st.Reused)
	}

	// Damage the stored form of the second cluster (the first one's content
	// is also at 12 MiB) in the reference.
	bad := bytes.Clone(oldImg)
	bad[oldIdx.Clusters[1].Off+3] ^= 0xff
	ref, err = NewReference(oldIdx, bytes.NewReader(bad), 0, int64(len(bad)))
	if err != nil {
		t.Fatal(err)
	}
	got, _, st = convertIndexed(t, raw, filepath.Join(dir, "damaged.qcow2"), ref)
	if !bytes.Equal(got, want) {
		t.Fatal("a damaged reference changed the image")
	}
	if st.Reused != 50 {
		t.Fatalf("%d reused with one stored cluster damaged; want 50", st.Reused)
	}
}

// TestIndexEncoding: an index decodes to itself; a truncated or trailing
// one, another format, or an index of another compressor or larger than
// its file is refused.
func TestIndexEncoding(t *testing.T) {
	dir := t.TempDir()
	raw := makeRaw(t, dir, 4<<20, []piece{{0, textBytes(1 << 20)}, {2 << 20, randomBytes(3, 1<<20)}})
	img, x, _ := convertIndexed(t, raw, filepath.Join(dir, "o.qcow2"), nil)
	enc := encode(t, x)
	back, err := ReadIndex(bytes.NewReader(enc))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(encode(t, back), enc) || len(back.Clusters) != 32 {
		t.Fatalf("decoded %d clusters, not the same index", len(back.Clusters))
	}
	for name, b := range map[string][]byte{
		"truncated": enc[:len(enc)-1],
		"trailing":  append(bytes.Clone(enc), 0),
		"format":    append([]byte("DIBQIDX0"), enc[8:]...),
	} {
		if _, err := ReadIndex(bytes.NewReader(b)); err == nil || !strings.Contains(err.Error(), "cluster index") {
			t.Errorf("%s: got %v, want a cluster index error", name, err)
		}
	}
	other := *back
	other.Compressor = "zlib level 6"
	if _, err := NewReference(&other, bytes.NewReader(img), 0, int64(len(img))); err == nil || !strings.Contains(err.Error(), "another compressor") {
		t.Errorf("another compressor: got %v", err)
	}
	if _, err := NewReference(back, bytes.NewReader(img), 0, 2*clusterSize); err == nil {
		t.Error("an index larger than its file was accepted")
	}
}
