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
