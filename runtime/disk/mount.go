package disk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/runtime/mount"
	"github.com/dibuild/dib/runtime/safepath"
	"github.com/dibuild/dib/runtime/shell"
)

// MountInput says which assembled image to mount where.
type MountInput struct {
	Layout *layout.Layout
	// Image is the raw image file; Volumes are from Assemble's Result.
	Image   string
	Volumes []Volume
	// Dir is the (existing) directory the root filesystem is mounted on;
	// the other filesystems go below it at their mount points.
	Dir string
	// ReadOnly mounts everything read-only.
	ReadOnly bool
	// Runner starts losetup; nil runs it plainly.
	Runner *shell.Runner

	failAt int
}

// Mounted is an image mounted for pre-finalise.d/finalise.d.
type Mounted struct {
	// Root is the directory the root filesystem is mounted on.
	Root string
	// Skipped lists the filesystems not mounted and why (swap; FAT when
	// the kernel has no vfat driver: write those with mtools instead).
	Skipped []string
	// Device is the loop device of the whole image (DIB's
	// IMAGE_BLOCK_DEVICE); Devices maps the image node and each mounted
	// filesystem's partition or volume node to its loop device (DIB's
	// IMAGE_BLOCK_DEVICES). Empty for a read-only mount.
	Device  string
	Devices map[string]string
	op      *op
	dirs    []string // the mounted directories, in mount order (Trim)
}

// Unmount unmounts everything and detaches the loop devices, in reverse
// order, continuing past errors. It is safe to call more than once.
func (m *Mounted) Unmount(ctx context.Context) error {
	if m == nil || m.op == nil {
		return nil
	}
	return m.op.stack.Release(context.WithoutCancel(ctx))
}

// Mount mounts the filesystems of an assembled image in mount order, each
// through a loop device over its byte range of the image file (the same
// kernel ext4/xfs drivers the booted image uses, so finalise.d sees the
// final filesystems as in DIB). On error everything already mounted or
// attached is released.
func Mount(ctx context.Context, in MountInput) (m *Mounted, err error) {
	o := newOp(ctx, in.Runner, in.failAt)
	m = &Mounted{Root: in.Dir, op: o}
	defer func() {
		if err != nil {
			err = joinErr(err, o.release(0))
			m = nil
		}
	}()
	if in.Layout == nil {
		return nil, errors.New("disk: mount: no layout")
	}
	if fi, err := os.Stat(in.Dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("disk: mount: %q is not a directory", in.Dir)
	}
	vols := map[string]Volume{}
	for _, v := range in.Volumes {
		vols[v.Node] = v
	}
	vfat := kernelHas("vfat")
	if !in.ReadOnly && len(in.Layout.Images) > 0 {
		// The whole disk, for hooks that write to it (a boot loader's
		// grub-install on IMAGE_BLOCK_DEVICE, as under DIB).
		dev, err := o.losetup(in.Image, 0, 0, false)
		if err != nil {
			return nil, err
		}
		m.Device = dev
		m.Devices = map[string]string{in.Layout.Images[0].Node: dev}
	}
	for _, mnt := range in.Layout.Mounts {
		fs := in.Layout.Filesystem(mnt.Filesystem)
		if fs == nil {
			return nil, fmt.Errorf("disk: mount %s: no filesystem %s", mnt.Node, mnt.Filesystem)
		}
		kind := fs.Type
		switch kind {
		case "swap":
			m.Skipped = append(m.Skipped, fs.Node+": swap")
			continue
		case "vfat", "fat":
			if !vfat {
				m.Skipped = append(m.Skipped, fs.Node+": FAT (no vfat driver in this kernel; use mtools)")
				continue
			}
			kind = "vfat"
		}
		if mnt.MountPoint == "none" || mnt.MountPoint == "" {
			continue
		}
		v, ok := vols[fs.Base]
		if !ok {
			return nil, fmt.Errorf("disk: mount %s: no volume %s in the assembly result", mnt.Node, fs.Base)
		}
		dir, err := safepath.InRoot("mount point", in.Dir, mnt.MountPoint)
		if err != nil {
			return nil, err
		}
		dev, err := o.losetup(in.Image, v.Offset, v.Size, in.ReadOnly)
		if err != nil {
			return nil, err
		}
		if m.Devices != nil {
			m.Devices[fs.Base] = dev
		}
		if err := o.step("mount " + dir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		var flags uintptr
		if in.ReadOnly {
			flags = 1 // MS_RDONLY
		}
		if err := mount.FS(kind, dev, dir, "", flags); err != nil {
			return nil, err
		}
		o.stack.Push("unmount "+dir, func(context.Context) error { return mount.UnmountAll(dir) })
		if (kind == "ext2" || kind == "ext3" || kind == "ext4") && !in.ReadOnly {
			streamAllocation(dev)
		}
		m.dirs = append(m.dirs, dir)
	}
	return m, nil
}

// kernelHas reports whether /proc/filesystems lists fstype.
func kernelHas(fstype string) bool {
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(strings.TrimPrefix(line, "nodev")) == fstype {
			return true
		}
	}
	return false
}

// streamAllocation turns off ext4's per-CPU locality-group preallocation
// on the filesystem of loop device dev: small files (under mb_stream_req
// blocks, 16 by default) otherwise go to the preallocated area of the CPU
// the writer ran on, so their blocks move between runs on a loaded
// machine (measured: 2 builds in 6 differed in the data blocks of the
// small files a test wrote). With mb_stream_req 0 every file is
// allocated from its goal. Best effort: without the sysfs knob the image
// is only less likely to be reproducible.
func streamAllocation(dev string) {
	knob := filepath.Join("/sys/fs/ext4", filepath.Base(dev), "mb_stream_req")
	os.WriteFile(knob, []byte("0\n"), 0o644)
}
