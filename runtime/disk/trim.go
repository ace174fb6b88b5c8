package disk

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fitrim is FITRIM, _IOWR('X', 121, struct fstrim_range), from
// linux/fs.h: discard the free blocks of the filesystem an open file is on.
const fitrim = 0xC0185879

type fstrimRange struct{ start, len, minLen uint64 }

// Trim discards the free blocks of every filesystem Mount mounted. Each is
// on a loop device over its byte range of the image file, which turns a
// discard into a hole punched in the file: what finalise.d and cleanup.d
// deleted after the tree was copied in (package lists, caches, logs) reads
// back as zeros, so a compressed or sparse copy of the image does not carry
// it. It returns the bytes the kernel reports trimmed. A filesystem that
// cannot discard is an error: the image would keep the deleted data.
func (m *Mounted) Trim() (int64, error) {
	if m == nil {
		return 0, nil
	}
	var total int64
	for _, dir := range m.dirs {
		n, err := trimDir(dir)
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

func trimDir(dir string) (int64, error) {
	f, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fd := f.Fd()
	// Blocks freed in a transaction not yet committed are not free for
	// FITRIM: commit first.
	if err := unix.Syncfs(int(fd)); err != nil {
		return 0, fmt.Errorf("syncfs %s: %w", dir, err)
	}
	r := fstrimRange{len: ^uint64(0)}
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, fitrim, uintptr(unsafe.Pointer(&r))); e != 0 {
		return 0, fmt.Errorf("discarding the free blocks of %s (FITRIM): %w", dir, e)
	}
	// The kernel writes the trimmed byte count back into len.
	return int64(r.len), nil
}
