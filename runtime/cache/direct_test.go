package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/dibuild/dib/runtime/directio"
)

// TestPayloadFileContent writes sizes around the block and chunk
// boundaries, in uneven pieces, and reads back exactly what was written,
// with the size and sha256 recorded.
func TestPayloadFileContent(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(1))
	for _, size := range []int{0, 1, directio.Block - 1, directio.Block, directio.Block + 1, directChunk - 1, directChunk, directChunk + 1, 3*directChunk + 4097} {
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

// TestHashingReader reads files around the chunk size in uneven pieces:
// the bytes and the sha256 are the file's; a reader stopped early gives
// no sum and its Close does not block.
func TestHashingReader(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(2))
	for _, size := range []int{0, 1, directChunk - 1, directChunk, directChunk + 1, 5*directChunk + 7} {
		data := make([]byte, size)
		rng.Read(data)
		name := filepath.Join(dir, "r"+strconv.Itoa(size))
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		r := newHashingReader(f)
		var got bytes.Buffer
		buf := make([]byte, 1+rng.Intn(100000))
		if _, err := io.CopyBuffer(&got, struct{ io.Reader }{r}, buf); err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(data); !bytes.Equal(got.Bytes(), data) || r.Sum() != hex.EncodeToString(sum[:]) {
			t.Fatalf("size %d: read %d bytes, sum %q; want the file and %x", size, got.Len(), r.Sum(), sum)
		}
		r.Close()
		f.Close()
	}
	f, err := os.Open(filepath.Join(dir, "r"+strconv.Itoa(5*directChunk+7)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := newHashingReader(f)
	if _, err := r.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if r.Sum() != "" {
		t.Fatal("a sum for a file not read to its end")
	}
	r.Close()
}
