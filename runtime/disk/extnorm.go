package disk

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"

	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/runtime/sde"
	"github.com/dibuild/dib/runtime/shell"
)

// NormalizeExt makes an unmounted ext2/3/4 filesystem of the image at
// offset independent of when and on which run it was written, so the same
// tree and the same writes give the same bytes:
//
//   - every inode in use: access, change and creation times are epoch
//     (the plan's SOURCE_DATE_EPOCH), a modification time later than
//     epoch becomes epoch (as the tar outputs clamp it), the generation
//     and the i_version counter are 0;
//   - every free inode slot below the group's high-water mark is zeroed
//     (the kernel leaves a deleted inode's fields and deletion time);
//   - the superblock forgets its mounts: mount time 0, write and check
//     times epoch, mount count 0, last-mounted path empty, kilobytes
//     written 0;
//   - the journal's log blocks are zeroed and its superblock restarts at
//     sequence 1 (it must be clean: a filesystem unmounted normally);
//   - with metadata_csum, the checksums of what changed are recomputed:
//     inodes, the superblocks, the journal superblock, and the directory
//     and extent-tree blocks of inodes whose generation changed (the
//     checksum seed includes it).
//
// Why by hand, measured on this host's e2fsprogs 1.47.0: mke2fs -d copies
// each file's change and access time from the tree (the time the tree was
// unpacked), and the kernel gives every inode it creates a random
// generation, which enters the checksums of its directory and extent
// blocks. debugfs can set inode fields (set_inode_field, 0.4 s for 30,000
// inodes × 5 fields) but cannot recompute directory-block checksums, read
// the modification times in bulk to clamp them, or reset the journal;
// e2fsck -fy would "repair" the checksums, hiding any real error. This pass
// reads only the used part of the inode tables once (a 30,000-file tree:
// tens of milliseconds). e2fsck -fn is its oracle in the tests.
func NormalizeExt(image string, offset, epoch int64) error {
	f, err := os.OpenFile(image, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	n := &extNorm{f: f, off: offset, epoch: epoch}
	if err := n.run(); err != nil {
		return fmt.Errorf("normalizing the ext filesystem at %d: %w", offset, err)
	}
	// Nothing is written until every structure was read and understood:
	// a filesystem NormalizeExt cannot handle is left as it was.
	for _, w := range n.writes {
		var err error
		if w.data == nil {
			err = zeroRange(f, w.off, w.zero)
		} else {
			_, err = f.WriteAt(w.data, w.off)
		}
		if err != nil {
			return err
		}
	}
	return f.Sync()
}

// ErrExtUnsupported is returned (wrapped) by NormalizeExt for a
// filesystem it does not normalize (a feature or structure it does not
// handle, or not cleanly unmounted); the filesystem is left unchanged.
var ErrExtUnsupported = errors.New("not normalized")

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrExtUnsupported}, args...)...)
}

// pendingWrite is one write NormalizeExt makes once it has read everything:
// data at off, or zero bytes zeroed at off when data is nil.
type pendingWrite struct {
	off  int64
	data []byte
	zero int64
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crc32c is the kernel's crc32c(seed, p): no inversion before or after.
func crc32c(seed uint32, p []byte) uint32 { return ^crc32.Update(^seed, castagnoli, p) }

const (
	extSBMagic         = 0xEF53
	extIncompatExtents = 0x40
	extIncompat64Bit   = 0x80
	extIncompatSupport = 0x2 | 0x4 | 0x40 | 0x80 | 0x200 | 0x2000 // filetype, recover, extents, 64bit, flex_bg, csum_seed
	extRoCompatCsum    = 0x400
	extRoCompatGDTCsum = 0x10
	extIncompatCsumSd  = 0x2000
	extBGInodeUninit   = 0x1
	extIndexFl         = 0x1000
	extExtentsFl       = 0x80000
	extExtentMagic     = 0xF30A
	jbdMagic           = 0xC03B3998
	jbdIncompatCsumV2  = 0x8
	jbdIncompatCsumV3  = 0x10
)

type extNorm struct {
	f     *os.File
	off   int64
	epoch int64

	sb        []byte
	bs        int64
	ipg       int64
	isz       int64
	groups    int64
	descSize  int64
	csum      bool
	gdtCsum   bool
	extents   bool
	csumSeed  uint32
	firstData int64
	writes    []pendingWrite
}

func (n *extNorm) readAt(p []byte, blk int64) error {
	_, err := n.f.ReadAt(p, n.off+blk*n.bs)
	return err
}

func (n *extNorm) writeAt(p []byte, blk int64) error {
	n.write(p, n.off+blk*n.bs)
	return nil
}

func (n *extNorm) write(p []byte, off int64) {
	n.writes = append(n.writes, pendingWrite{off: off, data: append([]byte(nil), p...)})
}

func (n *extNorm) run() error {
	n.sb = make([]byte, 1024)
	if _, err := n.f.ReadAt(n.sb, n.off+1024); err != nil {
		return err
	}
	sb := n.sb
	le16 := func(o int) int64 { return int64(binary.LittleEndian.Uint16(sb[o:])) }
	le32 := func(o int) int64 { return int64(binary.LittleEndian.Uint32(sb[o:])) }
	if le16(0x38) != extSBMagic {
		return unsupported("no ext2/3/4 superblock")
	}
	if le16(0x3A)&1 == 0 {
		return unsupported("the filesystem is not clean (mounted, or not unmounted properly)")
	}
	incompat := le32(0x60)
	rocompat := le32(0x64)
	if incompat&^extIncompatSupport != 0 {
		return unsupported("unsupported incompatible features %#x", incompat&^extIncompatSupport)
	}
	if incompat&0x4 != 0 {
		return unsupported("the journal needs recovery")
	}
	n.bs = 1024 << le32(0x18)
	n.ipg = le32(0x28)
	n.isz = 128
	if le32(0x4C) >= 1 {
		n.isz = le16(0x58)
	}
	n.firstData = le32(0x14)
	blocks := le32(0x04)
	if incompat&extIncompat64Bit != 0 {
		blocks |= le32(0x150) << 32
	}
	bpg := le32(0x20)
	n.groups = (blocks - n.firstData + bpg - 1) / bpg
	n.descSize = 32
	if incompat&extIncompat64Bit != 0 {
		n.descSize = le16(0xFE)
	}
	n.extents = incompat&extIncompatExtents != 0
	n.csum = rocompat&extRoCompatCsum != 0
	n.gdtCsum = n.csum || rocompat&extRoCompatGDTCsum != 0
	if n.csum {
		if incompat&extIncompatCsumSd != 0 {
			n.csumSeed = uint32(le32(0x270))
		} else {
			n.csumSeed = crc32c(^uint32(0), sb[0x68:0x78])
		}
	}
	gdt := make([]byte, n.groups*n.descSize)
	if _, err := n.f.ReadAt(gdt, n.off+(n.firstData+1)*n.bs); err != nil {
		return err
	}
	for g := int64(0); g < n.groups; g++ {
		if err := n.group(g, gdt[g*n.descSize:(g+1)*n.descSize]); err != nil {
			return fmt.Errorf("group %d: %w", g, err)
		}
	}
	if jnum := le32(0xE0); compatHasJournal(le32(0x5C)) && jnum != 0 {
		if err := n.journal(jnum); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
	}
	return n.superblock()
}

func compatHasJournal(compat int64) bool { return compat&0x4 != 0 }

func (n *extNorm) group(g int64, d []byte) error {
	lo32 := func(o int) int64 { return int64(binary.LittleEndian.Uint32(d[o:])) }
	lo16 := func(o int) int64 { return int64(binary.LittleEndian.Uint16(d[o:])) }
	ibitmap, itable := lo32(0x04), lo32(0x08)
	flags := lo16(0x12)
	unused := lo16(0x1C)
	if n.descSize >= 64 {
		ibitmap |= lo32(0x24) << 32
		itable |= lo32(0x28) << 32
		unused |= lo16(0x32) << 16
	}
	if n.gdtCsum && flags&extBGInodeUninit != 0 {
		return nil
	}
	used := n.ipg
	if n.gdtCsum {
		used -= unused
	}
	if used <= 0 {
		return nil
	}
	bitmap := make([]byte, n.bs)
	if err := n.readAt(bitmap, ibitmap); err != nil {
		return err
	}
	table := make([]byte, used*n.isz)
	if _, err := n.f.ReadAt(table, n.off+itable*n.bs); err != nil {
		return err
	}
	zero := make([]byte, n.isz)
	changed := false
	for i := int64(0); i < used; i++ {
		raw := table[i*n.isz : (i+1)*n.isz]
		ino := g*n.ipg + i + 1
		if bitmap[i/8]&(1<<(i%8)) == 0 {
			if !allZero(raw) {
				copy(raw, zero)
				changed = true
			}
			continue
		}
		c, err := n.inode(ino, raw)
		if err != nil {
			return fmt.Errorf("inode %d: %w", ino, err)
		}
		changed = changed || c
	}
	if !changed {
		return nil
	}
	n.write(table, n.off+itable*n.bs)
	return nil
}

// encodeTime splits t into ext4's 32-bit seconds and the extra field's
// epoch bits (nanoseconds 0).
func encodeTime(t int64) (uint32, uint32) {
	lo := uint32(t)
	return lo, uint32((t-int64(int32(lo)))>>32) & 3
}

func decodeTime(lo, extra uint32) (int64, uint32) {
	return int64(int32(lo)) + int64(extra&3)<<32, extra >> 2
}

// inode normalizes one used inode in place and reports whether it changed.
func (n *extNorm) inode(ino int64, raw []byte) (bool, error) {
	before := string(raw)
	extra := int64(0)
	if n.isz > 128 {
		extra = int64(binary.LittleEndian.Uint16(raw[0x80:]))
	}
	fits := func(end int64) bool { return 128+extra >= end }
	put := func(o int, v uint32) { binary.LittleEndian.PutUint32(raw[o:], v) }
	get := func(o int) uint32 { return binary.LittleEndian.Uint32(raw[o:]) }
	sec, ep := encodeTime(n.epoch)
	// access 0x08/0x8C, change 0x0C/0x84, creation 0x90/0x94.
	put(0x08, sec)
	put(0x0C, sec)
	if fits(0x88) {
		put(0x84, ep)
	}
	if fits(0x90) {
		put(0x8C, ep)
	}
	if fits(0x98) {
		put(0x90, sec)
		put(0x94, ep)
	}
	var mextra uint32
	if fits(0x8C) {
		mextra = get(0x88)
	}
	mt, ns := decodeTime(get(0x10), mextra)
	if t, tns := sde.Clamp(mt, int64(ns), n.epoch); t != mt || tns != int64(ns) {
		put(0x10, sec)
		if fits(0x8C) {
			put(0x88, ep)
		}
	}
	gen := get(0x64)
	put(0x64, 0)
	put(0x24, 0) // l_i_version
	if fits(0x9C) {
		put(0x98, 0) // i_version_hi
	}
	if err := n.extentTree(ino, raw, gen != 0); err != nil {
		return false, err
	}
	if !n.csum {
		return before != string(raw), nil
	}
	seed := n.inodeSeed(ino)
	lo := raw[0x7C:0x7E]
	lo[0], lo[1] = 0, 0
	hiFits := n.isz > 128 && fits(0x84)
	if hiFits {
		raw[0x82], raw[0x83] = 0, 0
	}
	c := crc32c(seed, raw)
	binary.LittleEndian.PutUint16(raw[0x7C:], uint16(c))
	if hiFits {
		binary.LittleEndian.PutUint16(raw[0x82:], uint16(c>>16))
	}
	return before != string(raw), nil
}

// inodeSeed is the checksum seed of inode ino with generation 0.
func (n *extNorm) inodeSeed(ino int64) uint32 {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], uint32(ino))
	s := crc32c(n.csumSeed, b[:])
	binary.LittleEndian.PutUint32(b[:], 0)
	return crc32c(s, b[:])
}

// extentTree clears the unused entry slots of an inode's extent tree
// (the kernel leaves stale extents there when the tree grows or shrinks,
// and which ones depends on when writeback ran) and recomputes the
// checksums of its extent-tree blocks and, for a directory whose
// generation changed (it seeds them), of its directory blocks.
func (n *extNorm) extentTree(ino int64, raw []byte, genChanged bool) error {
	mode := binary.LittleEndian.Uint16(raw[0x00:])
	isDir := mode&0xF000 == 0x4000
	flags := binary.LittleEndian.Uint32(raw[0x20:])
	if flags&extExtentsFl == 0 {
		if isDir && genChanged && n.csum {
			return unsupported("a directory with block maps on a metadata_csum filesystem is not supported")
		}
		return nil
	}
	root := raw[0x28 : 0x28+60]
	if binary.LittleEndian.Uint16(root[0:]) != extExtentMagic {
		return unsupported("bad extent header")
	}
	entries := int(binary.LittleEndian.Uint16(root[2:]))
	if 12+12*entries > len(root) {
		return unsupported("bad extent header")
	}
	clear(root[12+12*entries:])
	dirBlocks := isDir && genChanged && n.csum
	if binary.LittleEndian.Uint16(root[6:]) == 0 && !dirBlocks {
		return nil
	}
	seed := n.inodeSeed(ino)
	var blocks []int64
	if err := n.walkExtents(root, seed, true, dirBlocks, &blocks, 0); err != nil {
		return err
	}
	if !dirBlocks {
		return nil
	}
	buf := make([]byte, n.bs)
	for i, b := range blocks {
		if err := n.readAt(buf, b); err != nil {
			return err
		}
		if err := n.dirBlock(buf, seed, flags&extIndexFl != 0, i == 0); err != nil {
			return fmt.Errorf("directory block %d: %w", b, err)
		}
		if err := n.writeAt(buf, b); err != nil {
			return err
		}
	}
	return nil
}

// walkExtents walks an extent node; with reseal, the extent blocks below it
// get their unused entry slots cleared and (metadata_csum) their tail
// checksum recomputed with seed; with collect, the data blocks are listed
// in order.
func (n *extNorm) walkExtents(node []byte, seed uint32, reseal, collect bool, out *[]int64, level int) error {
	if binary.LittleEndian.Uint16(node[0:]) != extExtentMagic || level > 5 {
		return unsupported("bad extent header")
	}
	entries := int(binary.LittleEndian.Uint16(node[2:]))
	depth := binary.LittleEndian.Uint16(node[6:])
	if 12+12*entries > len(node) {
		return unsupported("bad extent header")
	}
	for k := 0; k < entries; k++ {
		e := node[12+12*k:]
		if depth == 0 {
			if !collect {
				continue
			}
			length := int64(binary.LittleEndian.Uint16(e[4:]))
			if length > 32768 {
				length -= 32768
			}
			start := int64(binary.LittleEndian.Uint16(e[6:]))<<32 | int64(binary.LittleEndian.Uint32(e[8:]))
			for b := int64(0); b < length; b++ {
				*out = append(*out, start+b)
			}
			continue
		}
		child := int64(binary.LittleEndian.Uint32(e[4:])) | int64(binary.LittleEndian.Uint16(e[8:]))<<32
		blk := make([]byte, n.bs)
		if err := n.readAt(blk, child); err != nil {
			return err
		}
		if err := n.walkExtents(blk, seed, reseal, collect, out, level+1); err != nil {
			return err
		}
		if !reseal {
			continue
		}
		used := 12 + 12*int(binary.LittleEndian.Uint16(blk[2:]))
		tail := 12 + 12*int(binary.LittleEndian.Uint16(blk[4:]))
		if used > tail || tail+4 > len(blk) {
			return unsupported("bad extent block")
		}
		clear(blk[used:tail])
		if n.csum {
			binary.LittleEndian.PutUint32(blk[tail:], crc32c(seed, blk[:tail]))
		}
		if err := n.writeAt(blk, child); err != nil {
			return err
		}
	}
	return nil
}

// dirBlock recomputes the checksum of a directory block: an htree root's
// or node's dx_tail, or a leaf's tail. The htree blocks are told by their
// structure first: a root made from a leaf keeps the leaf tail's bytes in
// its dx_tail's reserved word.
func (n *extNorm) dirBlock(b []byte, seed uint32, indexed, first bool) error {
	bs := len(b)
	countOff := 0
	switch {
	case indexed && first:
		// "." (12 bytes), ".." (rec_len to the end), dx_root_info (8).
		countOff = 0x20
	case indexed && binary.LittleEndian.Uint32(b[0:]) == 0 && int(binary.LittleEndian.Uint16(b[4:])) == bs:
		countOff = 8 // an empty dirent over the whole block
	}
	if countOff == 0 {
		t := b[bs-12:]
		if binary.LittleEndian.Uint32(t[0:]) != 0 || binary.LittleEndian.Uint16(t[4:]) != 12 || t[6] != 0 || t[7] != 0xDE {
			return unsupported("a leaf without a checksum tail")
		}
		binary.LittleEndian.PutUint32(t[8:], crc32c(seed, b[:bs-12]))
		return nil
	}
	limit := int(binary.LittleEndian.Uint16(b[countOff:]))
	count := int(binary.LittleEndian.Uint16(b[countOff+2:]))
	tailOff := countOff + 8*limit
	if count > limit || tailOff+8 > bs {
		return unsupported("bad htree node")
	}
	c := crc32c(seed, b[:countOff+8*count])
	c = crc32c(c, b[tailOff:tailOff+4])
	c = crc32c(c, []byte{0, 0, 0, 0})
	binary.LittleEndian.PutUint32(b[tailOff+4:], c)
	return nil
}

// blockMap lists the data blocks under block b of a block map, an
// indirect block of the given depth (0: b is a data block). Block 0 is a
// hole.
func (n *extNorm) blockMap(b int64, depth int, out *[]int64) error {
	if b == 0 {
		return nil
	}
	if depth == 0 {
		*out = append(*out, b)
		return nil
	}
	buf := make([]byte, n.bs)
	if err := n.readAt(buf, b); err != nil {
		return err
	}
	for k := 0; k+4 <= len(buf); k += 4 {
		if err := n.blockMap(int64(binary.LittleEndian.Uint32(buf[k:])), depth-1, out); err != nil {
			return err
		}
	}
	return nil
}

// journal zeroes the log blocks of the journal inode jnum and resets its
// superblock's sequence and log head.
func (n *extNorm) journal(jnum int64) error {
	g := (jnum - 1) / n.ipg
	i := (jnum - 1) % n.ipg
	d := make([]byte, n.descSize)
	if _, err := n.f.ReadAt(d, n.off+(n.firstData+1)*n.bs+g*n.descSize); err != nil {
		return err
	}
	itable := int64(binary.LittleEndian.Uint32(d[0x08:]))
	if n.descSize >= 64 {
		itable |= int64(binary.LittleEndian.Uint32(d[0x28:])) << 32
	}
	raw := make([]byte, n.isz)
	if _, err := n.f.ReadAt(raw, n.off+itable*n.bs+i*n.isz); err != nil {
		return err
	}
	var blocks []int64
	if binary.LittleEndian.Uint32(raw[0x20:])&extExtentsFl == 0 {
		// ext3: 12 direct blocks, then single, double, triple indirect.
		for k := 0; k < 15; k++ {
			b := int64(binary.LittleEndian.Uint32(raw[0x28+4*k:]))
			if err := n.blockMap(b, max(k-11, 0), &blocks); err != nil {
				return err
			}
		}
	} else if err := n.walkExtents(raw[0x28:0x28+60], 0, false, true, &blocks, 0); err != nil {
		return err
	}
	if len(blocks) == 0 {
		return unsupported("empty journal")
	}
	jsb := make([]byte, 1024)
	if _, err := n.f.ReadAt(jsb, n.off+blocks[0]*n.bs); err != nil {
		return err
	}
	be32 := func(o int) uint32 { return binary.BigEndian.Uint32(jsb[o:]) }
	if be32(0) != jbdMagic {
		return unsupported("no journal superblock")
	}
	if be32(0x1C) != 0 {
		return unsupported("the journal is not empty (s_start != 0)")
	}
	// Zero the log, in runs of contiguous blocks.
	for k := 1; k < len(blocks); {
		j := k
		for j+1 < len(blocks) && blocks[j+1] == blocks[j]+1 {
			j++
		}
		n.writes = append(n.writes, pendingWrite{off: n.off + blocks[k]*n.bs, zero: int64(j-k+1) * n.bs})
		k = j + 1
	}
	binary.BigEndian.PutUint32(jsb[0x18:], 1) // s_sequence, as mke2fs writes it
	binary.BigEndian.PutUint32(jsb[0x58:], 0) // s_head, as mke2fs writes it
	if be32(0x28)&(jbdIncompatCsumV2|jbdIncompatCsumV3) != 0 {
		binary.BigEndian.PutUint32(jsb[0xFC:], 0)
		binary.BigEndian.PutUint32(jsb[0xFC:], crc32c(^uint32(0), jsb))
	}
	n.write(jsb, n.off+blocks[0]*n.bs)
	return nil
}

// superblock resets the primary superblock's mount history and writes it.
func (n *extNorm) superblock() error {
	sb := n.sb
	sec, _ := encodeTime(n.epoch)
	hi := uint8(n.epoch >> 32)
	binary.LittleEndian.PutUint32(sb[0x2C:], 0)    // s_mtime
	binary.LittleEndian.PutUint32(sb[0x30:], sec)  // s_wtime
	binary.LittleEndian.PutUint16(sb[0x34:], 0)    // s_mnt_count
	binary.LittleEndian.PutUint32(sb[0x40:], sec)  // s_lastcheck
	clear(sb[0x88:0xC8])                           // s_last_mounted
	binary.LittleEndian.PutUint64(sb[0x178:], 0)   // s_kbytes_written
	binary.LittleEndian.PutUint32(sb[0x108:], sec) // s_mkfs_time
	sb[0x274], sb[0x275], sb[0x276], sb[0x277] = hi, 0, hi, hi
	if n.csum {
		binary.LittleEndian.PutUint32(sb[0x3FC:], crc32c(^uint32(0), sb[:0x3FC]))
	}
	n.write(sb, n.off+1024)
	return nil
}

// Finished says what Finish did to each filesystem, by node.
type Finished struct {
	// Free is what ZeroFree found.
	Free map[string]FreeSpace
	// NotNormalized says why an ext2/3/4 filesystem was left as it was
	// (ErrExtUnsupported): the image is not reproducible.
	NotNormalized map[string]string
}

// Finish is the last pass over an assembled image, unmounted after the
// late phases, before its outputs are written: the free blocks of every
// ext2/3/4 and FAT filesystem are zeroed (ZeroFree: blocks the kernel
// released only at unmount still hold deleted data), then each ext2/3/4
// filesystem is normalized (NormalizeExt: what the kernel wrote while it
// was mounted carries this run's times and random generations). Other
// filesystem types are left as they are.
func Finish(ctx context.Context, r *shell.Runner, image string, l *layout.Layout, vols []Volume, epoch int64) (Finished, error) {
	at := map[string]Volume{}
	for _, v := range vols {
		at[v.Node] = v
	}
	done := Finished{Free: map[string]FreeSpace{}, NotNormalized: map[string]string{}}
	for _, fs := range l.Filesystems {
		v, ok := at[fs.Base]
		if !ok {
			continue
		}
		got, err := ZeroFree(ctx, r, image, v.Offset, fs.Type)
		if errors.Is(err, ErrFreeUnsupported) {
			continue
		}
		if err != nil {
			return done, fmt.Errorf("zeroing the free blocks of %s: %w", fs.Node, err)
		}
		done.Free[fs.Node] = got
		switch fs.Type {
		case "ext2", "ext3", "ext4":
			err := NormalizeExt(image, v.Offset, epoch)
			if errors.Is(err, ErrExtUnsupported) {
				done.NotNormalized[fs.Node] = err.Error()
				continue
			}
			if err != nil {
				return done, fmt.Errorf("%s: %w", fs.Node, err)
			}
		}
	}
	return done, nil
}
