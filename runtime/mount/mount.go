// Package mount wraps the few mount(2) operations the runtime needs and
// reads /proc/self/mountinfo, so that teardown can prove nothing is left
// mounted under a build directory before that directory is removed (a
// recursive delete through a bind of /dev would wipe the host's /dev).
package mount

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// MountInfo is the mount table this package reads.
const MountInfo = "/proc/self/mountinfo"

// Points returns every mount point in table (mountinfo format), in table order.
func Points(table []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(table))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		out = append(out, Unescape(f[4]))
	}
	return out
}

// Unescape decodes mountinfo's octal escapes (\040 space, \011 tab, \012,
// \134) in a field of /proc/self/mountinfo (a mount point, a root).
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Under returns the mount points at or below dir, last mounted first: the
// order to unmount them in (the kernel lists a mount after its parent).
func Under(dir string) ([]string, error) {
	table, err := os.ReadFile(MountInfo)
	if err != nil {
		return nil, err
	}
	return under(table, dir), nil
}

func under(table []byte, dir string) []string {
	// The table holds absolute paths.
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	pts := Points(table)
	var out []string
	for i := len(pts) - 1; i >= 0; i-- {
		p := pts[i]
		if p == dir || strings.HasPrefix(p, dir+"/") {
			out = append(out, p)
		}
	}
	return out
}

// UnmountAll unmounts everything at or below dir, deepest first. A busy
// mount is detached lazily (MNT_DETACH) so the tree is gone from the
// namespace either way. It fails if anything is still mounted after.
func UnmountAll(dir string) error {
	pts, err := Under(dir)
	if err != nil {
		return err
	}
	for _, p := range pts {
		if err := syscall.Unmount(p, 0); err != nil && err != syscall.EINVAL && err != syscall.ENOENT {
			if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && err != syscall.EINVAL {
				return fmt.Errorf("unmount %s: %w", p, err)
			}
		}
	}
	left, err := Under(dir)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("still mounted under %s: %s", dir, strings.Join(left, ", "))
	}
	return nil
}

// UnmountAndRemove unmounts everything at or below dir (UnmountAll) and
// removes dir, the mount point the caller made for it: the release of a
// mount on a directory of its own.
func UnmountAndRemove(dir string) error {
	if err := UnmountAll(dir); err != nil {
		return err
	}
	return os.Remove(dir)
}

// Bind bind-mounts src on dst (recursively, so /dev brings /dev/pts along
// only when asked: rec). With readOnly the bind is remounted read-only,
// which needs a second mount(2) call.
func Bind(src, dst string, rec, readOnly bool) error {
	flags := uintptr(syscall.MS_BIND)
	if rec {
		flags |= syscall.MS_REC
	}
	if err := syscall.Mount(src, dst, "", flags, ""); err != nil {
		return fmt.Errorf("bind %s on %s: %w", src, dst, err)
	}
	if readOnly {
		if err := syscall.Mount("", dst, "", flags|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			_ = syscall.Unmount(dst, syscall.MNT_DETACH)
			return fmt.Errorf("remount %s read-only: %w", dst, err)
		}
	}
	return nil
}

// FS mounts a filesystem of type fstype (proc, sysfs, tmpfs, devpts) on dst.
func FS(fstype, source, dst, data string, flags uintptr) error {
	if err := syscall.Mount(source, dst, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", fstype, dst, err)
	}
	return nil
}
