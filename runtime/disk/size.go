package disk

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/dibuild/dib/compiler/plan/layout"
)

// SizeRule is DIB's image size rule for a tree when image-size is unset.
type SizeRule struct {
	// Ext4 adds DIB's 64 MiB for the journal (root filesystem ext4).
	Ext4 bool
	// EFI adds DIB's 525 MiB when block-device-efi is used.
	EFI bool
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
// divided by 0.6, plus 64 MiB for an ext4 journal and 525 MiB with
// block-device-efi, rounded up to 64 KiB.
func ImageSize(tree string, r SizeRule) (int64, error) {
	u, err := TreeUsage(tree)
	if err != nil {
		return 0, fmt.Errorf("disk: image size of %s: %w", tree, err)
	}
	size := u * 10 / 6
	if r.Ext4 {
		size += 64 << 20
	}
	if r.EFI {
		size += 525 << 20
	}
	const align = 64 << 10
	return (size + align - 1) / align * align, nil
}

// Baremetal writes the newest kernel and its initrd of a root tree (or a
// mounted image) beside the image as BASE.vmlinuz and BASE.initrd, as
// DIB's baremetal element does; each is written to a temporary name and
// renamed.
func Baremetal(root, base string) error {
	ks, _ := filepath.Glob(filepath.Join(root, "boot/vmlinuz-*"))
	if len(ks) == 0 {
		return fmt.Errorf("disk: baremetal: no kernel in %s/boot", root)
	}
	newest := ""
	for _, k := range ks {
		v := filepath.Base(k)[len("vmlinuz-"):]
		if newest == "" || kernelVersionLess(newest, v) {
			newest = v
		}
	}
	pairs := [][2]string{{"boot/vmlinuz-" + newest, base + ".vmlinuz"}, {"boot/initrd.img-" + newest, base + ".initrd"}}
	for _, p := range pairs {
		if err := copyOut(filepath.Join(root, p[0]), p[1]); err != nil {
			return fmt.Errorf("disk: baremetal: %w", err)
		}
	}
	return nil
}

func copyOut(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// kernelVersionLess orders versions piecewise: digit runs numerically.
func kernelVersionLess(a, b string) bool {
	for a != "" && b != "" {
		na, ra := run(a)
		nb, rb := run(b)
		if na != nb {
			da, db := na[0] >= '0' && na[0] <= '9', nb[0] >= '0' && nb[0] <= '9'
			if da && db {
				if len(na) != len(nb) {
					return len(na) < len(nb)
				}
			}
			return na < nb
		}
		a, b = ra, rb
	}
	return len(a) < len(b)
}

func run(s string) (string, string) {
	d := s[0] >= '0' && s[0] <= '9'
	n := 1
	for n < len(s) && (s[n] >= '0' && s[n] <= '9') == d {
		n++
	}
	return s[:n], s[n:]
}

// WriteFstab writes the layout's /etc/fstab into root (the tree or the
// mounted image), one line per entry in mount order, as DIB's
// `dib-block-device writefstab` does; the previous file is replaced.
func WriteFstab(root string, l *layout.Layout) error {
	var b strings.Builder
	for _, e := range l.Fstab {
		b.WriteString(e.Line + "\n")
	}
	p := filepath.Join(root, "etc/fstab")
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
