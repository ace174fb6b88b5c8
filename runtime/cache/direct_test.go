package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestPayloadFileContent writes sizes around the block and chunk
// boundaries, in uneven pieces, and reads back exactly what was written,
// with the size and sha256 recorded.
func TestPayloadFileContent(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(1))
	for _, size := range []int{0, 1, directBlock - 1, directBlock, directBlock + 1, directChunk - 1, directChunk, directChunk + 1, 3*directChunk + 4097} {
		data := make([]byte, size)
		rng.Read(data)
		name := filepath.Join(dir, "p"+strconv.Itoa(size))
		p, err := createPayload(name)
		if err != nil {
			t.Fatal(err)
		}
		for rest := data; len(rest) > 0; {
			n := 1 + rng.Intn(200000)
			if n > len(rest) {
				n = len(rest)
			}
			if w, err := p.Write(rest[:n]); err != nil || w != n {
				t.Fatalf("size %d: wrote %d of %d: %v", size, w, n, err)
			}
			rest = rest[n:]
		}
		if err := p.Sync(); err != nil {
			t.Fatalf("size %d: sync: %v", size, err)
		}
		if sum := sha256.Sum256(data); p.Sum() != hex.EncodeToString(sum[:]) || p.Size() != int64(size) {
			t.Fatalf("size %d: recorded %d bytes, sha256 %s; want %x", size, p.Size(), p.Sum(), sum)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("size %d: read back %d bytes, not what was written", size, len(got))
		}
	}
	if _, err := createPayload(filepath.Join(dir, "p0")); !os.IsExist(err) {
		t.Fatalf("creating an existing payload: %v, want an exists error", err)
	}
}

// TestPayloadFileBypassesPageCache: on a disk filesystem a payload's
// whole blocks go to the disk directly (O_DIRECT), so they are not left
// in the page cache for a writeback to pay for; only the last partial
// block is.
func TestPayloadFileBypassesPageCache(t *testing.T) {
	dir := t.TempDir()
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Type == unix.TMPFS_MAGIC || fs.Type == unix.OVERLAYFS_SUPER_MAGIC {
		t.Skipf("%s is not on a disk filesystem", dir)
	}
	name := filepath.Join(dir, "payload")
	p, err := createPayload(name)
	if err != nil {
		t.Fatal(err)
	}
	if !p.direct {
		t.Skipf("the filesystem of %s refuses O_DIRECT", dir)
	}
	size := 4*directChunk + 100
	if _, err := p.Write(bytes.Repeat([]byte{7}, size)); err != nil {
		t.Fatal(err)
	}
	if err := p.Sync(); err != nil {
		t.Fatal(err)
	}
	p.Close()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	page := os.Getpagesize()
	vec := make([]byte, (size+page-1)/page)
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(size), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal(e)
	}
	resident := 0
	for _, v := range vec {
		resident += int(v & 1)
	}
	if resident > 1 {
		t.Fatalf("%d of %d pages of the payload are in the page cache; want at most the last one", resident, len(vec))
	}
}

// TestPayloadFileWriteError: a failed write reaches the caller (from a
// later Write or from Sync) and nothing blocks.
func TestPayloadFileWriteError(t *testing.T) {
	p, err := createPayload(filepath.Join(t.TempDir(), "payload"))
	if err != nil {
		t.Fatal(err)
	}
	p.f.Close() // every write now fails
	var werr error
	for i := 0; i < 4*directBuffers && werr == nil; i++ {
		_, werr = p.Write(make([]byte, directChunk))
	}
	serr := p.Sync()
	if werr == nil && serr == nil {
		t.Fatal("writes to a closed file: no error from Write or Sync")
	}
	if serr == nil {
		t.Fatal("Sync after a failed write: no error")
	}
}
