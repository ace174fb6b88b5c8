package qcow2

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"runtime/debug"

	"github.com/klauspost/compress/flate"
)

// Compressing a cluster is most of the time of a compressed image: 4.8-5.2 s
// of the 25 s rebuild of the Debian VM example after an edited install.d
// script, on 2 cores. Yet a rebuild's image is mostly the previous one:
// mke2fs -d lays out the same tree the same way, so 15,486 of the 15,491
// data clusters of the rebuilt image were, at the same place, clusters of
// the one before (bench/rebuild.sh, 2 December 2026). An Index lists, by
// the sha256 of its content, where each cluster of a written image is
// stored and in which form; a later conversion given a Reference to that
// image copies the stored form of every cluster it finds there instead of
// deflating it again.
//
// The result is the same file byte for byte, because deflate is a pure
// function of the cluster, the level and the compressor's code: the index
// records the level and the compressor (its module version, and the sha256
// of a probe cluster deflated when the index was written, so that a
// changed compressor is noticed even without a version), and a Reference
// whose compressor differs from this one is not used. Each stored form
// carries its CRC-32C, checked when it is read back: a damaged reference
// costs the deflate, never a wrong image.

// indexMagic starts an encoded Index; the number after it is the format.
const indexMagic = "DIBQIDX1"

// compressLevel is the deflate level of compressed clusters (klauspost's
// default, as `qemu-img convert -c` uses zlib's).
const compressLevel = flate.DefaultCompression

// Stored is where one guest cluster's content is stored in an image.
type Stored struct {
	Sum   [32]byte // sha256 of the cluster's bytes (zero-padded at the image's end)
	Off   int64    // host offset of the stored form in the image file
	Len   uint32   // its length: the deflate stream, or a whole cluster
	Plain bool     // stored uncompressed (deflate did not make it smaller)
	CRC   uint32   // CRC-32C of the stored bytes
}

// Index lists the stored clusters of a compressed image, in host order.
type Index struct {
	Compressor string // compressorID when written
	Clusters   []Stored
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// compressorID names the deflate that compresses clusters: the level, the
// library's version where the binary records it, and the sha256 of a probe
// cluster's deflate stream (a millisecond, once per conversion).
func compressorID() string {
	version := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/klauspost/compress" {
				version = d.Version
			}
		}
	}
	// The probe: half text, half noise, so that both the match finder and
	// the literal coding show in its stream.
	probe := textBytes(clusterSize / 2)
	r := rand.New(rand.NewPCG(1, 2))
	for range clusterSize / 2 {
		probe = append(probe, byte(r.Uint32()))
	}
	z, _ := deflateCluster(nil, probe)
	sum := sha256.Sum256(z)
	return fmt.Sprintf("klauspost/compress %s level %d cluster %d probe %x", version, compressLevel, clusterSize, sum[:8])
}

// textBytes is n bytes of repeated text (the probe's half, and the
// tests').
func textBytes(n int) []byte {
	return bytes.Repeat([]byte("dib writes qcow2 clusters in guest order\n"), n/41+1)[:n]
}

// deflateCluster returns the deflate stream of data, with zw reused when
// not nil.
func deflateCluster(zw *flate.Writer, data []byte) ([]byte, *flate.Writer) {
	var zb bytes.Buffer
	if zw == nil {
		zw, _ = flate.NewWriter(&zb, compressLevel)
	} else {
		zw.Reset(&zb)
	}
	zw.Write(data)
	zw.Close()
	return zb.Bytes(), zw
}

// WriteTo encodes the index: the magic, the compressor, the count, then
// each cluster in 56 bytes.
func (x *Index) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriter(w)
	var n int64
	put := func(b []byte) {
		m, _ := bw.Write(b)
		n += int64(m)
	}
	put([]byte(indexMagic))
	put(binary.BigEndian.AppendUint16(nil, uint16(len(x.Compressor))))
	put([]byte(x.Compressor))
	put(binary.BigEndian.AppendUint64(nil, uint64(len(x.Clusters))))
	rec := make([]byte, 56)
	for _, c := range x.Clusters {
		copy(rec, c.Sum[:])
		binary.BigEndian.PutUint64(rec[32:], uint64(c.Off))
		binary.BigEndian.PutUint32(rec[40:], c.Len)
		flags := uint32(0)
		if c.Plain {
			flags = 1
		}
		binary.BigEndian.PutUint32(rec[44:], flags)
		binary.BigEndian.PutUint32(rec[48:], c.CRC)
		binary.BigEndian.PutUint32(rec[52:], 0)
		put(rec)
	}
	return n, bw.Flush()
}

// ReadIndex decodes an index written by WriteTo.
func ReadIndex(r io.Reader) (*Index, error) {
	br := bufio.NewReader(r)
	head := make([]byte, len(indexMagic)+2)
	if _, err := io.ReadFull(br, head); err != nil {
		return nil, fmt.Errorf("cluster index: %w", err)
	}
	if string(head[:len(indexMagic)]) != indexMagic {
		return nil, errors.New("cluster index: not an index of this format")
	}
	id := make([]byte, binary.BigEndian.Uint16(head[len(indexMagic):]))
	var count [8]byte
	if _, err := io.ReadFull(br, id); err != nil {
		return nil, fmt.Errorf("cluster index: %w", err)
	}
	if _, err := io.ReadFull(br, count[:]); err != nil {
		return nil, fmt.Errorf("cluster index: %w", err)
	}
	n := binary.BigEndian.Uint64(count[:])
	if n > 1<<40/clusterSize { // more clusters than a 1 TiB image: damaged
		return nil, fmt.Errorf("cluster index: %d clusters", n)
	}
	x := &Index{Compressor: string(id), Clusters: make([]Stored, 0, min(n, 1<<20))}
	rec := make([]byte, 56)
	for range n {
		if _, err := io.ReadFull(br, rec); err != nil {
			return nil, fmt.Errorf("cluster index: %w", err)
		}
		var c Stored
		copy(c.Sum[:], rec)
		c.Off = int64(binary.BigEndian.Uint64(rec[32:]))
		c.Len = binary.BigEndian.Uint32(rec[40:])
		c.Plain = binary.BigEndian.Uint32(rec[44:])&1 != 0
		c.CRC = binary.BigEndian.Uint32(rec[48:])
		if c.Off < 0 || c.Len == 0 || c.Len > clusterSize || (c.Plain && c.Len != clusterSize) {
			return nil, fmt.Errorf("cluster index: a cluster at %d of %d bytes", c.Off, c.Len)
		}
		x.Clusters = append(x.Clusters, c)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return nil, errors.New("cluster index: bytes after the last cluster")
	}
	return x, nil
}

// Reference is an earlier compressed image whose clusters a conversion
// may copy (Options.Reuse). It is safe for concurrent use.
type Reference struct {
	data  io.ReaderAt // the image file's bytes, from offset base
	base  int64
	size  int64 // the image file's size
	bySum map[[32]byte]Stored
}

// NewReference reads the stored clusters of x from data, which holds the
// image file x describes at offset base (an image kept inside a larger
// file) and size bytes long. It returns an error when x was written by
// another compressor or does not fit the file: the conversion then
// deflates every cluster.
func NewReference(x *Index, data io.ReaderAt, base, size int64) (*Reference, error) {
	if id := compressorID(); x.Compressor != id {
		return nil, fmt.Errorf("cluster index of another compressor (%q, this is %q)", x.Compressor, id)
	}
	r := &Reference{data: data, base: base, size: size, bySum: make(map[[32]byte]Stored, len(x.Clusters))}
	for _, c := range x.Clusters {
		if c.Off+int64(c.Len) > size {
			return nil, fmt.Errorf("cluster index: a cluster at %d+%d in a file of %d bytes", c.Off, c.Len, size)
		}
		r.bySum[c.Sum] = c
	}
	return r, nil
}

// find returns the stored form of the cluster whose sha256 is sum, read
// into buf (which must hold a cluster) and checked against its CRC-32C.
func (r *Reference) find(sum [32]byte, buf []byte) (b []byte, plain, ok bool) {
	c, ok := r.bySum[sum]
	if !ok {
		return nil, false, false
	}
	b = buf[:c.Len]
	if _, err := r.data.ReadAt(b, r.base+c.Off); err != nil {
		return nil, false, false
	}
	if crc32.Checksum(b, castagnoli) != c.CRC {
		return nil, false, false
	}
	return b, c.Plain, true
}
