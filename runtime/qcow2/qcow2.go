// Package qcow2 writes a qcow2 version 3 image from a raw disk image in one
// pass over the input.
//
// Layout of the file written (64 KiB clusters, 16-bit refcounts):
//
//	cluster 0           header (104 bytes, version 3, no extensions)
//	cluster 1…          data clusters in guest order; with compression,
//	                    deflate streams packed byte after byte
//	then                L2 tables, L1 table, refcount table, refcount blocks
//
// Holes (SEEK_DATA/SEEK_HOLE) are skipped without reading and clusters that
// read as zeros are dropped: both stay unallocated in L2, which qcow2 reads as
// zeros because the image has no backing file. The header goes last, so the
// output must be a regular file. qemu-img is only the test oracle.
//
// Compressed clusters follow the qcow2 specification: raw deflate per guest
// cluster, L2 bit 62 set, the host offset in bits 0..53 and the number of
// extra 512-byte sectors in bits 54..61; clusters whose deflate output is not
// smaller than a cluster are stored uncompressed. Compression runs on every
// core; output order stays the guest order, so the result is deterministic.
package qcow2

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"runtime"
	"sync"

	"github.com/dibuild/dib/runtime/directio"
	"github.com/dibuild/dib/runtime/sparse"

	"github.com/klauspost/compress/flate"
)

const (
	clusterBits   = 16
	clusterSize   = 1 << clusterBits
	refcountOrder = 4 // 16-bit refcounts
	headerLength  = 104

	l2Entries       = clusterSize / 8 // 8192 entries: one L2 table maps 512 MiB
	refcountsPerBlk = clusterSize * 8 / (1 << refcountOrder)

	flagCopied     = uint64(1) << 63
	flagCompressed = uint64(1) << 62
	// csizeShift is where the sector count of a compressed cluster starts:
	// 62 - (cluster_bits - 8).
	csizeShift = 62 - (clusterBits - 8)
)

// Options tune Write. The zero value writes an uncompressed image.
type Options struct {
	// Compress stores each cluster deflated when that makes it smaller,
	// like `qemu-img convert -c`.
	Compress bool
	// Workers is the number of compressing goroutines; 0 means GOMAXPROCS.
	Workers int
	// Reuse, with Compress, is an earlier image whose stored clusters
	// are copied wherever a cluster of the same content is written
	// (reuse.go): the same file, without deflating those again.
	Reuse *Reference
	// Index, with Compress, when not nil, is filled with the written
	// image's clusters (Stats.Index), for a later conversion's Reuse.
	Index *Index
}

// Stats describes a written image.
type Stats struct {
	VirtualSize   int64 // guest size in bytes
	DataClusters  int64 // guest clusters stored
	Compressed    int64 // of which compressed
	ZeroClusters  int64 // guest clusters read but dropped as all-zero
	Reused        int64 // data clusters copied from Options.Reuse
	FileSize      int64 // bytes of the qcow2 file
	BytesReadFrom int64 // bytes read from the raw input
}

// Convert writes the raw image at src as a qcow2 image at dst. dst is
// written under a temporary name in the same directory and renamed on
// success; on any error nothing is left at dst.
func Convert(ctx context.Context, src, dst string, opt Options) (Stats, error) {
	in, err := os.Open(src)
	if err != nil {
		return Stats{}, err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return Stats{}, err
	}
	tmp := dst + ".tmp-qcow2"
	os.Remove(tmp)
	// The data area goes around the page cache (runtime/directio: its
	// writeback costs more CPU here than the conversion itself).
	out, err := directio.Create(tmp, 0o644)
	if err != nil {
		return Stats{}, err
	}
	st, err := Write(ctx, out, in, fi.Size(), opt)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return Stats{}, fmt.Errorf("qcow2: %s: %w", dst, err)
	}
	return st, nil
}

// Write reads size bytes of a raw image from in and writes a qcow2 image to
// out, which must be empty. in is read with pread, so holes are found with
// SEEK_DATA/SEEK_HOLE when it is a file and read as data otherwise.
func Write(ctx context.Context, out io.WriterAt, in io.ReaderAt, size int64, opt Options) (Stats, error) {
	if size < 0 {
		return Stats{}, errors.New("negative size")
	}
	w := &writer{
		out:  out,
		size: size,
		l2:   make([][]uint64, (size+l2Entries*clusterSize-1)/(l2Entries*clusterSize)),
		ref:  make(map[int64]uint16),
		pos:  clusterSize, // cluster 0 is the header
		// Aligned, and never grown by append (appendData flushes at
		// 4 MiB, before a cluster more): direct writes where out is a
		// directio.File.
		buf: directio.Buffer(4<<20 + clusterSize)[:0],
	}
	w.ref[0] = 1
	if opt.Compress && opt.Index != nil {
		w.index = opt.Index
		*w.index = Index{Compressor: compressorID()}
	}
	w.st.VirtualSize = (size + 511) &^ 511

	extents, err := dataExtents(in, size)
	if err != nil {
		return Stats{}, err
	}
	copyFn := w.copyClusters
	if !opt.Compress {
		copyFn = w.copyPlain
	}
	if err := copyFn(ctx, in, extents, opt); err != nil {
		return Stats{}, err
	}
	if err := w.finish(); err != nil {
		return Stats{}, err
	}
	return w.st, nil
}

// dataExtents lists the cluster-aligned ranges of in that may hold data
// (runtime/sparse). Inputs that are not files are one extent.
func dataExtents(in io.ReaderAt, size int64) ([]sparse.Extent, error) {
	if f, ok := in.(*os.File); ok {
		return sparse.Extents(f, size, clusterSize)
	}
	if size == 0 {
		return nil, nil
	}
	return []sparse.Extent{{Start: 0, End: size}}, nil
}

type writer struct {
	out  io.WriterAt
	size int64
	l2   [][]uint64 // L2 tables by L1 index; nil when the table maps nothing
	ref  map[int64]uint16
	pos  int64  // next free byte of the host file
	buf  []byte // data not yet written, ending at pos
	st   Stats
	// index, when not nil, collects where each data cluster is stored.
	index *Index
}

// job is one guest cluster on its way from the reader to the writer.
type job struct {
	index int64  // guest cluster index
	data  []byte // cluster bytes (zero-padded at the end of the image)
	z     []byte // deflated bytes, when smaller than a cluster
	zero  bool
	done  chan struct{}
	// With an index or a reference: the sha256 of data and the CRC-32C
	// of the stored form (z, or data when z is nil).
	sum    [32]byte
	crc    uint32
	reused bool
}

// copyClusters reads every cluster of the extents in guest order, drops
// zeros, compresses on a worker pool if asked and stores clusters in order.
// It is about 100 lines because the reader, the workers and the writer
// that keeps guest order share one set of channels and one cancellation;
// apart, their hand-off would be spread over three functions.
func (w *writer) copyClusters(ctx context.Context, in io.ReaderAt, extents []sparse.Extent, opt Options) error {
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if !opt.Compress {
		workers = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	pool := sync.Pool{New: func() any { return make([]byte, clusterSize) }}
	work := make(chan *job, workers*4)
	ordered := make(chan *job, workers*8)
	var readErr error
	go func() { // reader: guest order
		defer close(work)
		defer close(ordered)
		for _, e := range extents {
			for off := e.Start; off < e.End; off += clusterSize {
				if ctx.Err() != nil {
					readErr = ctx.Err()
					return
				}
				buf := pool.Get().([]byte)
				n := int64(clusterSize)
				if off+n > w.size {
					n = w.size - off
					clear(buf[n:])
				}
				if _, err := in.ReadAt(buf[:n], off); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
					readErr = fmt.Errorf("read at %d: %w", off, err)
					return
				}
				w.st.BytesReadFrom += n
				j := &job{index: off / clusterSize, data: buf, done: make(chan struct{})}
				select {
				case ordered <- j:
				case <-ctx.Done():
					readErr = ctx.Err()
					return
				}
				select {
				case work <- j:
				case <-ctx.Done():
					readErr = ctx.Err()
					return
				}
			}
		}
	}()
	hashed := opt.Compress && (opt.Reuse != nil || w.index != nil)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var zw *flate.Writer
			scratch := make([]byte, clusterSize)
			for j := range work {
				j.zero = isZero(j.data)
				if !j.zero && opt.Compress {
					compressCluster(j, opt.Reuse, hashed, &zw, scratch)
				}
				close(j.done)
			}
		}()
	}
	var err error
	for j := range ordered {
		if err != nil {
			continue // drain; a job may never reach a worker after cancel
		}
		select {
		case <-j.done:
		case <-ctx.Done():
			err = ctx.Err()
			continue
		}
		if err = w.store(j); err != nil {
			cancel()
			continue
		}
		pool.Put(j.data)
	}
	wg.Wait()
	if err != nil {
		return err
	}
	return readErr
}

// copyPlain is copyClusters without compression: 4 MiB reads, no
// goroutines, clusters stored straight from the read buffer.
func (w *writer) copyPlain(ctx context.Context, in io.ReaderAt, extents []sparse.Extent, _ Options) error {
	buf := make([]byte, 4<<20)
	for _, e := range extents {
		for off := e.Start; off < e.End; {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := min(int64(len(buf)), e.End-off)
			chunk := buf[:(n+clusterSize-1)&^(clusterSize-1)]
			clear(chunk[n:])
			if _, err := in.ReadAt(chunk[:n], off); err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("read at %d: %w", off, err)
			}
			w.st.BytesReadFrom += n
			for c := 0; c < len(chunk); c += clusterSize {
				j := job{index: (off + int64(c)) / clusterSize, data: chunk[c : c+clusterSize]}
				j.zero = isZero(j.data)
				if err := w.store(&j); err != nil {
					return err
				}
			}
			off += n
		}
	}
	return nil
}

// compressCluster sets j.z to the deflate stream of j.data when that is
// smaller than a cluster, copying it from ref when ref has the cluster;
// with hashed set it fills j.sum and j.crc.
func compressCluster(j *job, ref *Reference, hashed bool, zw **flate.Writer, scratch []byte) {
	if hashed {
		j.sum = sha256.Sum256(j.data)
	}
	if ref != nil {
		if b, plain, ok := ref.find(j.sum, scratch); ok {
			if !plain {
				j.z = bytes.Clone(b)
			}
			j.crc = crc32.Checksum(b, castagnoli)
			j.reused = true
			return
		}
	}
	z, w := deflateCluster(*zw, j.data)
	*zw = w
	// Keep a margin so the sector count fits and a compressed cluster
	// never costs more than a plain one.
	if len(z) < clusterSize-512 {
		j.z = bytes.Clone(z)
	}
	if hashed {
		stored := j.data
		if j.z != nil {
			stored = j.z
		}
		j.crc = crc32.Checksum(stored, castagnoli)
	}
}

func isZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// store appends one guest cluster to the data area and records its L2 entry
// and the refcounts of the host clusters it occupies.
func (w *writer) store(j *job) error {
	if j.zero {
		w.st.ZeroClusters++
		return nil
	}
	var entry uint64
	if j.z != nil {
		off := w.pos
		end := off + int64(len(j.z))
		extra := uint64((end-1)>>9 - off>>9)
		entry = flagCompressed | extra<<csizeShift | uint64(off)
		for c := off >> clusterBits; c <= (end-1)>>clusterBits; c++ {
			w.ref[c]++
		}
		if w.index != nil {
			w.index.Clusters = append(w.index.Clusters, Stored{Sum: j.sum, Off: off, Len: uint32(len(j.z)), CRC: j.crc})
		}
		if err := w.appendData(j.z); err != nil {
			return err
		}
		w.st.Compressed++
	} else {
		if p := align(w.pos); p > w.pos {
			if err := w.appendData(make([]byte, p-w.pos)); err != nil {
				return err
			}
		}
		entry = flagCopied | uint64(w.pos)
		w.ref[w.pos>>clusterBits] = 1
		if w.index != nil {
			w.index.Clusters = append(w.index.Clusters, Stored{Sum: j.sum, Off: w.pos, Len: clusterSize, Plain: true, CRC: j.crc})
		}
		if err := w.appendData(j.data); err != nil {
			return err
		}
	}
	l1 := j.index / l2Entries
	if w.l2[l1] == nil {
		w.l2[l1] = make([]uint64, l2Entries)
	}
	w.l2[l1][j.index%l2Entries] = entry
	w.st.DataClusters++
	if j.reused {
		w.st.Reused++
	}
	return nil
}

// appendData adds b at w.pos. The data area is written sequentially in
// 4 MiB writes: 64 KiB writes are several times slower on ext4.
func (w *writer) appendData(b []byte) error {
	w.buf = append(w.buf, b...)
	w.pos += int64(len(b))
	if len(w.buf) >= 4<<20 {
		return w.flush()
	}
	return nil
}

func (w *writer) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.out.WriteAt(w.buf, w.pos-int64(len(w.buf)))
	w.buf = w.buf[:0]
	return err
}

func align(n int64) int64 { return (n + clusterSize - 1) &^ (clusterSize - 1) }

// finish writes the L2 tables, L1 table, refcount structures and header.
func (w *writer) finish() error {
	// The end of the data area may be a partial cluster of compressed
	// bytes; zero-fill it so readers of whole sectors see no garbage.
	if err := w.appendData(make([]byte, align(w.pos)-w.pos)); err != nil {
		return err
	}
	if err := w.flush(); err != nil {
		return err
	}
	pos := w.pos
	l1 := make([]uint64, len(w.l2))
	for i, t := range w.l2 {
		if t == nil {
			continue
		}
		if err := w.writeTable(t, pos); err != nil {
			return err
		}
		l1[i] = flagCopied | uint64(pos)
		w.ref[pos>>clusterBits] = 1
		pos += clusterSize
	}
	l1Off := pos
	l1Clusters := (int64(len(l1))*8 + clusterSize - 1) / clusterSize
	if len(l1) > 0 {
		if err := w.writeTable(l1, l1Off); err != nil {
			return err
		}
	}
	for i := int64(0); i < l1Clusters; i++ {
		w.ref[l1Off>>clusterBits+i] = 1
	}
	pos += l1Clusters * clusterSize

	// Size the refcount table and blocks: they must count themselves.
	used := pos >> clusterBits
	var blocks, tableClusters int64
	for {
		total := used + blocks + tableClusters
		nb := (total + refcountsPerBlk - 1) / refcountsPerBlk
		nt := (nb*8 + clusterSize - 1) / clusterSize
		if nb == blocks && nt == tableClusters {
			break
		}
		blocks, tableClusters = nb, nt
	}
	rtOff := pos
	rbOff := rtOff + tableClusters*clusterSize
	for i := int64(0); i < tableClusters+blocks; i++ {
		w.ref[rtOff>>clusterBits+i] = 1
	}
	table := make([]uint64, tableClusters*clusterSize/8)
	for b := int64(0); b < blocks; b++ {
		table[b] = uint64(rbOff + b*clusterSize)
	}
	if err := w.writeTable(table, rtOff); err != nil {
		return err
	}
	blk := make([]byte, clusterSize)
	for b := int64(0); b < blocks; b++ {
		clear(blk)
		for i := int64(0); i < refcountsPerBlk; i++ {
			binary.BigEndian.PutUint16(blk[i*2:], w.ref[b*refcountsPerBlk+i])
		}
		if _, err := w.out.WriteAt(blk, rbOff+b*clusterSize); err != nil {
			return err
		}
	}
	end := rbOff + blocks*clusterSize

	h := make([]byte, clusterSize)
	be := binary.BigEndian
	be.PutUint32(h[0:], 0x514649fb) // "QFI\xfb"
	be.PutUint32(h[4:], 3)
	be.PutUint32(h[20:], clusterBits)
	// qemu reads the size in whole 512-byte sectors and would drop a
	// partial last sector; round up (the extra bytes read as zeros).
	be.PutUint64(h[24:], uint64((w.size+511)&^511))
	be.PutUint32(h[36:], uint32(len(l1)))
	be.PutUint64(h[40:], uint64(l1Off))
	be.PutUint64(h[48:], uint64(rtOff))
	be.PutUint32(h[56:], uint32(tableClusters))
	be.PutUint32(h[96:], refcountOrder)
	be.PutUint32(h[100:], headerLength)
	// Bytes 104.. are zero: the header extension list ends at once.
	if _, err := w.out.WriteAt(h, 0); err != nil {
		return err
	}
	w.st.FileSize = end
	return nil
}

func (w *writer) writeTable(t []uint64, off int64) error {
	n := (int64(len(t))*8 + clusterSize - 1) &^ (clusterSize - 1)
	b := make([]byte, n)
	for i, v := range t {
		binary.BigEndian.PutUint64(b[i*8:], v)
	}
	_, err := w.out.WriteAt(b, off)
	return err
}
