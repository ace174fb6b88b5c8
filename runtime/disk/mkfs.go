package disk

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/runtime/mount"
	"github.com/dibuild/dib/runtime/safepath"
)

// mke2fsConf pins every mke2fs default dib relies on, so the filesystems
// are the same on every host whatever its /etc/mke2fs.conf says (e2fsprogs
// 1.47 hosts enable orphan_file and metadata_csum_seed-capable defaults
// that GRUB 2.06 and older guests do not read). The feature sets are the
// ones GRUB 2.06 reads: no metadata_csum_seed (INCOMPAT, GRUB ≥ 2.12 only),
// no orphan_file; metadata_csum is RO_COMPAT, which GRUB ignores.
// mke2fs runs with -T default, so the "small"/"floppy" size classes never
// change the block or inode size behind our back.
const mke2fsConf = `[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	enable_periodic_fsck = 0
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384
	reserved_ratio = 5.0
	lazy_itable_init = false
	lazy_journal_init = false

[fs_types]
	ext3 = {
		features = has_journal
	}
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	}
	default = {
		blocksize = 4096
		inode_size = 256
		inode_ratio = 16384
	}
`

// Ext4Features is the feature list of an ext4 filesystem dib makes, as
// dumpe2fs prints it (tests check it).
const Ext4Features = "has_journal ext_attr resize_inode dir_index filetype extent 64bit flex_bg sparse_super large_file huge_file dir_nlink extra_isize metadata_csum"

func (a *assembly) mkfs(fs *layout.Filesystem) error {
	v, err := a.volume(fs.Base)
	if err != nil {
		return err
	}
	mark := a.stack.Mark()
	switch fs.Type {
	case "ext2", "ext3", "ext4":
		err = a.mkfsExt(fs, v)
	case "vfat", "fat":
		err = a.mkfsVfat(fs, v)
	case "swap":
		err = a.mkswap(fs, v)
	case "xfs":
		err = a.mkfsXFS(fs, v)
	default:
		err = fmt.Errorf("unsupported filesystem type %q", fs.Type)
	}
	// Views, loop devices and mounts of this filesystem go now.
	return joinErr(err, a.release(mark))
}

func joinErr(err, rerr error) error {
	if err == nil {
		return rerr
	}
	if rerr != nil {
		return fmt.Errorf("%w (and cleanup: %v)", err, rerr)
	}
	return err
}

func (a *assembly) mkfsExt(fs *layout.Filesystem, v Volume) error {
	conf := filepath.Join(a.work, "mke2fs.conf")
	if _, err := os.Stat(conf); err != nil {
		if err := os.WriteFile(conf, []byte(mke2fsConf), 0o644); err != nil {
			return err
		}
	}
	// mke2fs discards its byte range first (on a file: punches a hole,
	// within offset..offset+size only); knowing the range reads as zeros
	// it then skips zeroing the inode tables, so the image stays sparse
	// (a 40 GB root: 261 MB allocated instead of 2.8 GB with nodiscard).
	ext := []string{"offset=" + strconv.FormatInt(v.Offset, 10)}
	if fs.UUID != "" {
		// The directory hash seed follows the UUID: reproducible trees.
		ext = append(ext, "hash_seed="+fs.UUID)
	}
	if a.in.MaxOnlineResize > 0 {
		ext = append(ext, "resize="+strconv.FormatInt(a.in.MaxOnlineResize, 10))
	}
	// mke2fs keeps only the last -E: merge the user's into ours.
	var opts []string
	for i := 0; i < len(fs.Opts); i++ {
		if fs.Opts[i] == "-E" && i+1 < len(fs.Opts) {
			ext = append(ext, fs.Opts[i+1])
			i++
			continue
		}
		opts = append(opts, fs.Opts[i])
	}
	argv := []string{"mke2fs", "-q", "-F", "-t", fs.Type, "-T", "default", "-L", fs.Label}
	if fs.UUID != "" {
		argv = append(argv, "-U", fs.UUID)
	}
	argv = append(argv, "-E", strings.Join(ext, ","))
	src, nested, err := a.source(fs.MountPoint)
	if err != nil {
		return err
	}
	if src != "" {
		dir, err := a.view(fs.Node, src, nested)
		if err != nil {
			return err
		}
		argv = append(argv, "-d", dir)
	}
	argv = append(argv, opts...)
	argv = append(argv, a.tmpPath, strconv.FormatInt(v.Size/1024, 10)+"k")
	// E2FSPROGS_FAKE_TIME is libext2fs's clock (creation, write and check
	// times, the times of the inodes mke2fs makes itself); the inodes
	// copied from the tree carry its access and change times, which
	// NormalizeExt resets. NormalizeExt rewrites the primary superblock
	// only: the backup superblocks keep this clock. libext2fs takes 0 for
	// "no fake time" and uses the real clock (seen in the Debian boot
	// test: the backups of two images made with epoch 0 differed in
	// s_wtime, s_lastcheck and s_mkfs_time), so epoch 0 runs it at 1.
	epoch := strconv.FormatInt(max(a.in.SourceDateEpoch, 1), 10)
	// mke2fs -d reads each directory with scandir(alphasort): LC_ALL=C
	// makes that byte order whatever the host's locale.
	if err := a.run([]string{"MKE2FS_CONFIG=" + conf, "MKE2FS_SYNC=0", "E2FSPROGS_FAKE_TIME=" + epoch, "LC_ALL=C"}, argv...); err != nil {
		return err
	}
	if err := a.step("normalize " + fs.Node); err != nil {
		return err
	}
	// A filesystem made with options NormalizeExt does not handle (the
	// layout's mkfs options may add features) is only not reproducible.
	if err := NormalizeExt(a.tmpPath, v.Offset, a.in.SourceDateEpoch); err != nil && !errors.Is(err, ErrExtUnsupported) {
		return err
	}
	return nil
}

// fatEpoch is the earliest time FAT can store, 1980-01-01 00:00 UTC:
// mtools wraps earlier SOURCE_DATE_EPOCHs to 2098.
const fatEpoch = 315532800

// FATEnv is the environment of mkfs.vfat and mtools for reproducible FAT
// filesystems: their clock is SOURCE_DATE_EPOCH (no earlier than FAT's
// 1980 epoch), and FAT's local times are UTC whatever the host's zone.
func FATEnv(epoch int64) []string {
	return []string{"SOURCE_DATE_EPOCH=" + strconv.FormatInt(max(epoch, fatEpoch), 10), "TZ=UTC", "MTOOLS_SKIP_CHECK=1"}
}

func (a *assembly) mkfsVfat(fs *layout.Filesystem, v Volume) error {
	// FAT sectors are the disk's logical sectors (4Kn images get 4 KiB
	// FAT sectors, as firmware on such a disk expects); --offset and -h
	// count them.
	ss := int64(a.img.SectorSize)
	if ss == 0 {
		ss = 512
	}
	if v.Offset%ss != 0 || v.Size%1024 != 0 {
		return fmt.Errorf("FAT filesystem at %d+%d is not %d/1024-byte aligned", v.Offset, v.Size, ss)
	}
	sector := strconv.FormatInt(v.Offset/ss, 10)
	argv := []string{"mkfs.vfat", "-S", strconv.FormatInt(ss, 10)}
	// FAT32 needs 65525 clusters: with one sector per cluster (small ESPs
	// otherwise fall below it and mtools refuses them) that is ~34 MiB of
	// 512-byte sectors; smaller filesystems get what mkfs.vfat picks.
	if v.Size >= 70000*ss {
		argv = append(argv, "-F", "32", "-s", "1")
	}
	argv = append(argv, "--offset="+sector, "-h", sector, "-n", fs.Label)
	if fs.VolumeID != "" {
		argv = append(argv, "-i", fs.VolumeID)
	}
	argv = append(argv, fs.Opts...)
	argv = append(argv, a.tmpPath, strconv.FormatInt(v.Size/1024, 10))
	env := FATEnv(a.in.SourceDateEpoch)
	if err := a.run(env, argv...); err != nil {
		return err
	}
	if err := a.step("stamp label " + fs.Node); err != nil {
		return err
	}
	if err := stampFATLabel(a.tmpPath, v.Offset, a.in.SourceDateEpoch); err != nil {
		return err
	}
	src, _, err := a.source(fs.MountPoint)
	if err != nil {
		return err
	}
	if src == "" {
		return nil
	}
	if _, err := os.Stat(src); os.IsNotExist(err) {
		return nil
	}
	// The tree goes in in name order, one directory at a time: mcopy -s
	// follows readdir's order, which on tmpfs is the order the files were
	// made (a tree restored from the build cache differs from a cold one).
	var dirs []string
	files := map[string][]string{}
	err = filepath.WalkDir(src, func(p string, d iofs.DirEntry, err error) error {
		if err != nil || p == src {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, rel)
			return nil
		}
		parent := filepath.Dir(rel)
		files[parent] = append(files[parent], p)
		return nil
	})
	if err != nil {
		return err
	}
	img := fmt.Sprintf("%s@@%d", a.tmpPath, v.Offset)
	if len(dirs) > 0 {
		argv := []string{"mmd", "-D", "s", "-i", img}
		for _, d := range dirs {
			argv = append(argv, "::/"+filepath.ToSlash(d))
		}
		if err := a.run(env, argv...); err != nil {
			return err
		}
	}
	// No -m: every entry gets mtools' clock, SOURCE_DATE_EPOCH, not the
	// tree's times (a file written during the build would carry the build
	// time; firmware reads no FAT times).
	for _, d := range append([]string{"."}, dirs...) {
		if len(files[d]) == 0 {
			continue
		}
		argv := append([]string{"mcopy", "-p", "-Q", "-D", "o", "-i", img}, files[d]...)
		to := "::/"
		if d != "." {
			to += filepath.ToSlash(d) + "/"
		}
		if err := a.run(env, append(argv, to)...); err != nil {
			return err
		}
	}
	return nil
}

// mkswap runs mkswap on a sparse scratch file of the partition's size and
// copies its header page into the image: mkswap writes nothing else and
// has no offset option.
func (a *assembly) mkswap(fs *layout.Filesystem, v Volume) error {
	tmp, err := a.workPath(fs.Node, ".swap")
	if err != nil {
		return err
	}
	if err := os.WriteFile(tmp, nil, 0o600); err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Truncate(tmp, v.Size); err != nil {
		return err
	}
	argv := []string{"mkswap", "-L", fs.Label}
	if fs.UUID != "" {
		argv = append(argv, "-U", fs.UUID)
	}
	argv = append(argv, fs.Opts...)
	if err := a.run(nil, append(argv, tmp)...); err != nil {
		return err
	}
	page := make([]byte, 4096)
	src, err := os.Open(tmp)
	if err != nil {
		return err
	}
	defer src.Close()
	if _, err := io.ReadFull(src, page); err != nil {
		return err
	}
	img, err := os.OpenFile(a.tmpPath, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := img.WriteAt(page, v.Offset); err != nil {
		img.Close()
		return err
	}
	return img.Close()
}

// mkfsXFS makes an xfs filesystem on a loop device over the volume, mounts
// it and copies the subtree in (xfsprogs has no -d TREE).
func (a *assembly) mkfsXFS(fs *layout.Filesystem, v Volume) error {
	dev, err := a.losetup(a.tmpPath, v.Offset, v.Size, false)
	if err != nil {
		return err
	}
	argv := []string{"mkfs.xfs", "-f", "-q", "-L", fs.Label}
	if fs.UUID != "" {
		argv = append(argv, "-m", "uuid="+fs.UUID)
	}
	argv = append(argv, fs.Opts...)
	if err := a.run(nil, append(argv, dev)...); err != nil {
		return err
	}
	src, nested, err := a.source(fs.MountPoint)
	if err != nil {
		return err
	}
	if src == "" {
		return nil
	}
	dir, err := a.view(fs.Node, src, nested)
	if err != nil {
		return err
	}
	mnt, err := a.workPath("mnt-"+fs.Node, "")
	if err != nil {
		return err
	}
	if err := a.mountFS(dev, mnt, "xfs"); err != nil {
		return err
	}
	return a.run(nil, "cp", "-a", "--sparse=always", dir+"/.", mnt+"/")
}

// mountFS mounts dev (a filesystem of type t) on a new directory dir and
// pushes the unmount.
func (a *assembly) mountFS(dev, dir, t string) error {
	if err := a.step("mount " + dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := mount.FS(t, dev, dir, "", 0); err != nil {
		os.Remove(dir)
		return err
	}
	a.stack.Push("unmount "+dir, func(context.Context) error { return mount.UnmountAndRemove(dir) })
	return nil
}

// view returns a directory showing src with the nested mount points empty:
// a read-only, non-recursive bind of src (in the work dir, so the tree is
// never changed and nothing mounted below src shows) with an empty tmpfs
// over each nested mount point, carrying the mode and owner of the
// original directory. mkfs.ext4 -d and cp read the view. Without root and
// without nested mount points it is src itself.
func (a *assembly) view(node, src string, nested []string) (string, error) {
	if _, err := os.Stat(src); err != nil {
		return "", fmt.Errorf("content of %s: %w", node, err)
	}
	var top []string // hide /boot only, not /boot and /boot/efi
	for _, n := range nested {
		if len(top) > 0 && strings.HasPrefix(n, top[len(top)-1]+"/") {
			continue
		}
		top = append(top, n)
	}
	// Without nested mount points a view is still worth having: a
	// non-recursive bind never shows what is mounted inside the tree
	// (a chroot's /proc, /dev). Rootless runs read the tree itself.
	if len(top) == 0 && os.Geteuid() != 0 {
		return src, nil
	}
	// Mount points must exist in the parent filesystem (fstab mounts
	// them), so create the missing ones in the tree, as DIB's mounts do.
	rels := make([]string, len(top))
	for i, n := range top {
		at, err := safepath.InRoot("mount point", a.in.Tree, n)
		if err != nil {
			return "", err
		}
		rel, err := filepath.Rel(src, at)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			return "", fmt.Errorf("mount point %s is outside %s", n, src)
		}
		rels[i] = rel
		if err := os.MkdirAll(filepath.Join(src, rel), 0o755); err != nil {
			return "", err
		}
	}
	dir, err := a.workPath("view-"+node, "")
	if err != nil {
		return "", err
	}
	if err := a.step("bind " + dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := mount.Bind(src, dir, false, true); err != nil {
		os.Remove(dir)
		return "", fmt.Errorf("%w (splitting the tree by mount point needs root)", err)
	}
	a.stack.Push("unmount "+dir, func(context.Context) error { return mount.UnmountAndRemove(dir) })
	for _, rel := range rels {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(src, rel), &st); err != nil {
			return "", err
		}
		if err := a.step("hide " + rel); err != nil {
			return "", err
		}
		data := fmt.Sprintf("mode=%o,uid=%d,gid=%d,size=64k", st.Mode&0o7777, st.Uid, st.Gid)
		if err := mount.FS("tmpfs", "dib-empty", filepath.Join(dir, rel), data, syscall.MS_RDONLY); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// stampFATLabel gives the volume-label entry mkfs.vfat writes in the root
// directory the times mtools gives every other entry (SOURCE_DATE_EPOCH,
// UTC): mkfs.fat 4.2 stamps it with the host's clock whatever
// SOURCE_DATE_EPOCH says (measured: two runs a second apart differ in its
// time field), and mlabel, which honours it, also writes a copy of the
// boot sector elsewhere in the reserved area. Only the label entry's time
// and date fields are written.
func stampFATLabel(image string, offset, epoch int64) error {
	f, err := os.OpenFile(image, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	bpb := make([]byte, 512)
	if _, err := f.ReadAt(bpb, offset); err != nil {
		return fmt.Errorf("FAT boot sector: %w", err)
	}
	le16 := func(o int) int64 { return int64(binary.LittleEndian.Uint16(bpb[o:])) }
	le32 := func(o int) int64 { return int64(binary.LittleEndian.Uint32(bpb[o:])) }
	bps, spc := le16(0x0b), int64(bpb[0x0d])
	reserved, nFATs, rootEntries := le16(0x0e), int64(bpb[0x10]), le16(0x11)
	fatSize := le16(0x16)
	if fatSize == 0 {
		fatSize = le32(0x24)
	}
	if bps == 0 || spc == 0 || bpb[510] != 0x55 || bpb[511] != 0xaa {
		return errors.New("not a FAT boot sector")
	}
	// FAT12/16: a fixed root directory after the FATs; FAT32: the root
	// cluster's first sector (the label is the first entry mkfs writes).
	rootSector := reserved + nFATs*fatSize
	if rootEntries == 0 {
		rootSector += (le32(0x2c) - 2) * spc
	}
	dir := make([]byte, bps)
	at := offset + rootSector*bps
	if _, err := f.ReadAt(dir, at); err != nil {
		return err
	}
	t := time.Unix(max(epoch, fatEpoch), 0).UTC()
	date := uint16(t.Year()-1980)<<9 | uint16(t.Month())<<5 | uint16(t.Day())
	clock := uint16(t.Hour())<<11 | uint16(t.Minute())<<5 | uint16(t.Second()/2)
	for e := 0; e+32 <= len(dir); e += 32 {
		ent := dir[e : e+32]
		if ent[0] == 0 {
			break
		}
		if ent[0] == 0xe5 || ent[11] != 0x08 {
			continue
		}
		ent[0x0d] = 0
		binary.LittleEndian.PutUint16(ent[0x0e:], clock)
		binary.LittleEndian.PutUint16(ent[0x10:], date)
		binary.LittleEndian.PutUint16(ent[0x12:], date)
		binary.LittleEndian.PutUint16(ent[0x16:], clock)
		binary.LittleEndian.PutUint16(ent[0x18:], date)
		if _, err := f.WriteAt(ent, at+int64(e)); err != nil {
			return err
		}
		return nil
	}
	return nil
}
