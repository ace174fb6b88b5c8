package disk

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/runtime/safepath"
)

// SizeRule is DIB's image size rule for a tree when image-size is unset.
type SizeRule struct {
	// Ext4 adds the journal (root filesystem ext4): JournalMiB, or DIB's
	// 64 MiB when 0 (DIB_JOURNAL_SIZE).
	Ext4       bool
	JournalMiB int64
	// EFI adds DIB's 525 MiB when block-device-efi is used.
	EFI bool
	// ExtraMiB, when set (DIB_IMAGE_EXTRA_SIZE), replaces the / 0.6
	// margin: the tree's usage plus this many MiB.
	ExtraMiB float64
}

// TreeUsage is `du --block-size=1 -x -s TREE`: allocated bytes of every
// inode under tree on tree's filesystem, hard links counted once.
func TreeUsage(tree string) (int64, error) {
	var root syscall.Stat_t
	if err := syscall.Lstat(tree, &root); err != nil {
		return 0, err
	}
	type ino struct{ dev, ino uint64 }
	seen := map[ino]bool{}
	var total int64
	err := filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		if st.Dev != root.Dev { // -x: stay on one filesystem
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if st.Nlink > 1 && !d.IsDir() {
			k := ino{st.Dev, st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		total += st.Blocks * 512
		return nil
	})
	return total, err
}

// ImageSize applies DIB's rule (disk-image-create): the tree's usage
// divided by 0.6 (or plus DIB_IMAGE_EXTRA_SIZE MiB), plus the ext4 journal
// (DIB_JOURNAL_SIZE, 64 MiB by default) and 525 MiB with
// block-device-efi, rounded up to 64 KiB.
func ImageSize(tree string, r SizeRule) (int64, error) {
	u, err := TreeUsage(tree)
	if err != nil {
		return 0, fmt.Errorf("disk: image size of %s: %w", tree, err)
	}
	size := u * 10 / 6
	if r.ExtraMiB > 0 {
		// awk's %d of $1 * 1024: whole KiB.
		size = u + int64(r.ExtraMiB*1024)*1024
	}
	if r.Ext4 {
		j := r.JournalMiB
		if j == 0 {
			j = 64
		}
		size += j << 20
	}
	if r.EFI {
		size += 525 << 20
	}
	const align = 64 << 10
	return (size + align - 1) / align * align, nil
}

// WriteFstab writes the layout's /etc/fstab into root (the tree or the
// mounted image), one line per entry in mount order, as DIB's
// `dib-block-device writefstab` does; the previous file is replaced.
func WriteFstab(root string, l *layout.Layout) error {
	var b strings.Builder
	for _, e := range l.Fstab {
		b.WriteString(e.Line + "\n")
	}
	// /etc (or /etc/fstab's directory) may be a link in the image: it
	// resolves inside the image.
	etc, err := safepath.InRoot("image path", root, "/etc")
	if err != nil {
		return err
	}
	p := filepath.Join(etc, "fstab")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := p + ".dib-tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
