package disk

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
)

// TestTrimZeroesDeletedData deletes a file written into a mounted image,
// as finalise.d and cleanup.d do: without Trim its blocks stay in the
// image (ScanFree sees them), with Trim every free block of every
// filesystem reads as zeros.
func TestTrimZeroesDeletedData(t *testing.T) {
	needHost(t, append(assemblyTools, "dumpe2fs")...)
	for _, trim := range []bool{false, true} {
		l := efiLayout(256)
		img, r := assembleFor(t, l)
		dir := t.TempDir()
		m, err := Mount(context.Background(), MountInput{Layout: l, Image: img, Volumes: r.Volumes, Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		junk := make([]byte, 8<<20)
		rand.Read(junk)
		p := filepath.Join(dir, "var-cache-junk")
		if err := os.WriteFile(p, junk, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := m.Unmount(context.Background()); err != nil { // written through
			t.Fatal(err)
		}
		if m, err = Mount(context.Background(), MountInput{Layout: l, Image: img, Volumes: r.Volumes, Dir: dir}); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if trim {
			n, err := m.Trim()
			if err != nil {
				t.Fatal(err)
			}
			if n < int64(len(junk)) {
				t.Errorf("Trim reports %d bytes, less than the %d deleted", n, len(junk))
			}
		}
		if err := m.Unmount(context.Background()); err != nil {
			t.Fatal(err)
		}
		noLoopOrMount(t, img, dir)
		root, err := ScanFree(context.Background(), nil, img, volumeOf(t, r, "root").Offset, "ext4", false)
		if err != nil {
			t.Fatal(err)
		}
		esp, err := ScanFree(context.Background(), nil, img, volumeOf(t, r, "ESP").Offset, "vfat", false)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("trim=%v: root free %d, non-zero %d; ESP free %d, non-zero %d", trim, root.Free, root.NonZero, esp.Free, esp.NonZero)
		if root.Free < int64(len(junk)) || esp.Free == 0 {
			t.Errorf("free space not found: root %+v, ESP %+v", root, esp)
		}
		if esp.NonZero != 0 {
			t.Errorf("ESP free clusters hold %d non-zero bytes", esp.NonZero)
		}
		switch {
		case trim && root.NonZero != 0:
			t.Errorf("after Trim the root's free blocks hold %d non-zero bytes", root.NonZero)
		case !trim && root.NonZero < int64(len(junk)):
			t.Errorf("without Trim ScanFree finds only %d non-zero free bytes of the %d deleted", root.NonZero, len(junk))
		}
		if !trim {
			// The offline way: ZeroFree on the unmounted image.
			fi, _ := os.Stat(img)
			z, err := ZeroFree(context.Background(), nil, img, volumeOf(t, r, "root").Offset, "ext4")
			if err != nil || z.NonZero != root.NonZero {
				t.Fatalf("ZeroFree: %+v %v, want %d non-zero bytes zeroed", z, err, root.NonZero)
			}
			after, err := ScanFree(context.Background(), nil, img, volumeOf(t, r, "root").Offset, "ext4", false)
			if err != nil || after.NonZero != 0 {
				t.Errorf("after ZeroFree: %+v %v", after, err)
			}
			if fi2, _ := os.Stat(img); fi2.Size() != fi.Size() {
				t.Errorf("ZeroFree changed the image size: %d → %d", fi.Size(), fi2.Size())
			}
			checkExt(t, img, volumeOf(t, r, "root").Offset, map[string]string{"/usr/share/doc/dib/README": "hello\n"})
		}
	}
}

func TestExtFreeRanges(t *testing.T) {
	out := []byte("Free blocks:              90319\nBlock size:               4096\n" +
		"Group 0: (Blocks 0-32767)\n  Free blocks: 6695-8192, 9000, 9002-9003\n" +
		"Group 1: (Blocks 32768-65535) [BLOCK_UNINIT]\n  Free blocks: \n")
	bs, rs, err := extFreeRanges(out)
	if err != nil || bs != 4096 || len(rs) != 3 || rs[0] != (blockRange{6695, 8192}) || rs[1] != (blockRange{9000, 9000}) || rs[2] != (blockRange{9002, 9003}) {
		t.Fatalf("got %d %v %v", bs, rs, err)
	}
}

// sparseImage writes a 64-block file of 4 KiB blocks: data in blocks 3,
// 10-12, 40 and 50, zeros written (allocated, not a hole) in block 20,
// holes elsewhere.
func sparseImage(t testing.TB) string {
	const bs = 4096
	p := filepath.Join(t.TempDir(), "img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(64 * bs); err != nil {
		t.Fatal(err)
	}
	for _, b := range []int64{3, 10, 11, 12, 40, 50} {
		data := make([]byte, bs)
		data[b%bs] = byte(b)
		if _, err := f.WriteAt(data, b*bs); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.WriteAt(make([]byte, bs), 20*bs); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestScanFreeSparse: free blocks in holes count as free and zero, data
// in free blocks is found and zeroed, blocks outside the free ranges are
// left alone, whatever mix of holes and data a chunk holds.
func TestScanFreeSparse(t *testing.T) {
	const bs = 4096
	p := sparseImage(t)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ranges := []blockRange{{0, 15}, {18, 45}, {63, 63}}
	got, err := scanFree(f, 0, bs, ranges, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := (FreeSpace{Free: 45 * bs, NonZero: 5 * bs}); got != want {
		t.Fatalf("scan: %+v, want %+v", got, want)
	}
	if got, err = scanFree(f, 0, bs, ranges, true); err != nil || got.NonZero != 5*bs {
		t.Fatalf("zeroing: %+v, %v", got, err)
	}
	if got, err = scanFree(f, 0, bs, ranges, false); err != nil || got.NonZero != 0 || got.Free != 45*bs {
		t.Fatalf("after zeroing: %+v, %v; want 45 free blocks, none with data", got, err)
	}
	b50 := make([]byte, bs)
	if _, err := f.ReadAt(b50, 50*bs); err != nil || b50[50] != 50 {
		t.Fatal("block 50 is not free and was changed")
	}
	// An offset that is not a multiple of the block size (FAT clusters
	// start anywhere): the blocks shift, the data found stays the same.
	if got, err = scanFree(f, 512, bs, []blockRange{{49, 49}}, false); err != nil || got.NonZero != bs {
		t.Fatalf("block 49 at offset 512 covers block 50's data: %+v, %v", got, err)
	}
}

// BenchmarkScanFreeSparse scans 3 GiB of free space that is all hole but
// for one block, as a trimmed image's is.
func BenchmarkScanFreeSparse(b *testing.B) {
	const bs = 4096
	p := filepath.Join(b.TempDir(), "img")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	blocks := int64(3 << 30 / bs)
	if err := f.Truncate(blocks * bs); err != nil {
		b.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{1}, blocks/2*bs); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if fs, err := scanFree(f, 0, bs, []blockRange{{0, blocks - 1}}, false); err != nil || fs.NonZero != bs {
			b.Fatalf("%+v, %v", fs, err)
		}
	}
}
