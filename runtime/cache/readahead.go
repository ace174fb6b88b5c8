package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"os"

	"github.com/dibuild/dib/runtime/directio"
)

// hashingReader reads a payload file ahead of its reader, in 1 MiB chunks
// on a goroutine that also hashes them, so that the disk's transfer and
// sha256 overlap with extracting the archive instead of adding up. It reads
// with O_DIRECT (directio.Reader): payloads are written with O_DIRECT, so
// a restore reads them from the disk, not from the page cache, and filling
// the page cache with them cost more CPU than the read itself. Read is called by one goroutine; Sum is the sha256
// of the whole file once Read returned io.EOF.
type hashingReader struct {
	h    hash.Hash
	full chan readChunk
	free chan []byte
	stop chan struct{}
	done chan struct{}

	cur []byte
	pos int
	err error
}

type readChunk struct {
	b   []byte
	err error
}

func newHashingReader(f *os.File) *hashingReader {
	r := &hashingReader{
		h:    sha256.New(),
		full: make(chan readChunk, directBuffers),
		free: make(chan []byte, directBuffers),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	for range directBuffers {
		r.free <- directio.Buffer(directChunk)
	}
	go r.reader(directio.NewReader(f))
	return r
}

func (r *hashingReader) reader(f *directio.Reader) {
	defer close(r.done)
	defer f.Close()
	defer close(r.full)
	for {
		var b []byte
		select {
		case b = <-r.free:
		case <-r.stop:
			return
		}
		n, err := f.Fill(b)
		r.h.Write(b[:n])
		select {
		case r.full <- readChunk{b[:n], err}:
		case <-r.stop:
			return
		}
		if err != nil {
			return
		}
	}
}

func (r *hashingReader) Read(p []byte) (int, error) {
	for r.pos == len(r.cur) {
		if r.err != nil {
			return 0, r.err
		}
		if r.cur != nil {
			r.free <- r.cur[:cap(r.cur)]
			r.cur = nil
		}
		c, ok := <-r.full
		if !ok {
			r.err = io.ErrClosedPipe
			return 0, r.err
		}
		r.cur, r.pos, r.err = c.b, 0, c.err
	}
	n := copy(p, r.cur[r.pos:])
	r.pos += n
	return n, nil
}

// Sum is the sha256 of the file, in hex, after Read returned io.EOF
// ("" before: the file was not read to its end).
func (r *hashingReader) Sum() string {
	if !errors.Is(r.err, io.EOF) || r.pos != len(r.cur) {
		return ""
	}
	<-r.done
	return hex.EncodeToString(r.h.Sum(nil))
}

// Close stops reading ahead.
func (r *hashingReader) Close() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
}
