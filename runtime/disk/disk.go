// Package disk assembles a disk image file from a computed block-device
// layout (compiler/plan/layout) and a built root tree, in user space:
//
//   - partition tables are written into the image file (go-diskfs for GPT,
//     the layout's exact records for MBR);
//   - LVM metadata is written with the lvm tools on loop devices with
//     activation disabled, and the LV extents are read back from it;
//   - every filesystem is made straight into its byte range of the image:
//     ext2/3/4 with `mkfs.ext4 -E offset= -d TREE`, FAT with
//     `mkfs.vfat --offset` + mtools, swap with mkswap, xfs on a loop device
//     at an offset (mkfs.xfs, mount, copy);
//   - the tree is split by mount point: a filesystem gets the subtree at its
//     mount point with the mount points of the other filesystems below it
//     seen as empty directories.
//
// No kpartx, no device-mapper, no udev. Every loop device, mount and temp
// file an operation acquires is on its cleanup stack and released on
// success and on failure; the image is written under a temporary name and
// renamed last.
package disk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/runtime/safepath"
	"github.com/dibuild/dib/runtime/shell"
	"github.com/dibuild/dib/spec/diag"
)

// Input is what Assemble builds a disk image from.
type Input struct {
	// Layout is the computed block-device layout of the plan.
	Layout *layout.Layout
	// Image is the node of the image to build; "" means the first one.
	Image string
	// Tree is the built root filesystem tree.
	Tree string
	// Output is the raw image file to write. It is written as
	// Output+".tmp" and renamed on success.
	Output string
	// WorkDir holds scratch files and mount points; "" means os.TempDir().
	WorkDir string
	// MaxOnlineResize is DIB's MAX_ONLINE_RESIZE: ext* filesystems reserve
	// GDT blocks to grow online to this many blocks (-E resize=). 0: none.
	MaxOnlineResize int64
	// SourceDateEpoch is the plan's SOURCE_DATE_EPOCH: every time the
	// assembly writes is this one, and later modification times from the
	// tree are clamped to it (NormalizeExt; FAT entries all carry it), so
	// the same tree and layout give the same image bytes.
	SourceDateEpoch int64
	// Runner starts the host tools; nil runs them plainly.
	Runner *shell.Runner

	failAt int // tests: fail the Nth step
}

// Volume is where one block device of the layout (image, partition or
// logical volume) lies in the image file.
type Volume struct {
	Node   string `json:"node"`
	Offset int64  `json:"offset"`
	Size   int64  `json:"size"`
}

// Result describes an assembled image.
type Result struct {
	// Path is the raw image (Input.Output).
	Path string `json:"path"`
	// Volumes are every device of the layout with its byte range, sorted
	// by node; logical volumes are included with the extents LVM chose.
	Volumes []Volume `json:"volumes"`
	// Timings are the wall times of the assembly phases, in order.
	Timings []Timing `json:"timings"`
}

// Timing is the wall time of one phase.
type Timing struct {
	Phase    string        `json:"phase"`
	Duration time.Duration `json:"duration"`
}

// Assemble builds the disk image of in.Layout from in.Tree. On error
// nothing is left at in.Output, and no loop device or mount remains.
func Assemble(ctx context.Context, in Input) (res Result, err error) {
	o := newOp(ctx, in.Runner, in.failAt)
	defer func() {
		if rerr := o.release(0); rerr != nil {
			err = errors.Join(err, rerr)
		}
		if err != nil {
			res = Result{}
		}
	}()
	a := &assembly{op: o, in: in, vols: map[string]Volume{}, noVolume: map[string]string{}}
	if err := a.check(); err != nil {
		return Result{}, err
	}
	return a.build()
}

type assembly struct {
	*op
	in      Input
	img     *layout.Image
	tmpPath string
	work    string
	vols    map[string]Volume
	// noVolume says why a device has no byte range (LVs spanning
	// segments), for the filesystem that asks for it.
	noVolume map[string]string
	timings  []Timing
}

func (a *assembly) phase(name string, start time.Time) {
	a.timings = append(a.timings, Timing{Phase: name, Duration: time.Since(start)})
}

// check validates the input before anything is written.
func (a *assembly) check() error {
	l := a.in.Layout
	if l == nil || len(l.Images) == 0 {
		return errors.New("disk: the layout has no image")
	}
	if ds := Check(l); ds.HasErrors() {
		return ds.Err()
	}
	a.img = &l.Images[0]
	if a.in.Image != "" {
		if a.img = l.Image(a.in.Image); a.img == nil {
			return fmt.Errorf("disk: the layout has no image %q", a.in.Image)
		}
	}
	if fi, err := os.Stat(a.in.Tree); err != nil || !fi.IsDir() {
		return fmt.Errorf("disk: root tree %q is not a directory", a.in.Tree)
	}
	if a.in.Output == "" {
		return errors.New("disk: no output path")
	}
	return checkNames(l)
}

// checkNames refuses, before anything is written, node names that are not
// one path component and mount points with a ".." component (each is
// checked again where it becomes a path).
func checkNames(l *layout.Layout) error {
	var names []string
	for _, im := range l.Images {
		names = append(names, im.Node)
	}
	for _, t := range l.PartitionTables {
		for _, p := range t.Partitions {
			names = append(names, p.Node)
		}
	}
	for _, g := range l.LVM {
		names = append(names, g.Node)
		for _, lv := range g.LVs {
			names = append(names, lv.Node)
		}
	}
	for _, f := range l.Filesystems {
		names = append(names, f.Node)
	}
	for _, n := range names {
		if err := safepath.Name("block-device node name", n); err != nil {
			return fmt.Errorf("disk: %w", err)
		}
	}
	for _, f := range l.Filesystems {
		if f.MountPoint == "" || f.MountPoint == "none" {
			continue
		}
		if _, err := safepath.InRoot("mount point", "/nonexistent-root", f.MountPoint); err != nil {
			return fmt.Errorf("disk: filesystem %s: %w", f.Node, err)
		}
	}
	return nil
}

// Check reports what Assemble cannot build from a layout on a host
// without device-mapper, before anything runs (dib plan can show it):
// filesystem types without a user-space mkfs path here, thin logical
// volumes, several images.
func Check(l *layout.Layout) diag.Diagnostics {
	var ds diag.Diagnostics
	if len(l.Images) > 1 {
		ds = ds.Append(diag.Errorf("layouts with %d images are not supported: dib builds one disk image per layout", len(l.Images)).
			WithSubject(l.Images[1].Node))
	}
	for _, f := range l.Filesystems {
		if !supportedFS(f.Type) {
			ds = ds.Append(diag.Errorf("filesystem type %q cannot be made into an image here", f.Type).
				WithSubject(f.Node).WithHint("use ext2, ext3, ext4, xfs, vfat or swap"))
		}
	}
	for _, g := range l.LVM {
		for _, lv := range g.LVs {
			if lv.Type != "" {
				ds = ds.Append(diag.Errorf("logical volume of type %s: thin provisioning needs the device-mapper thin target to format the pool metadata, and this host has no device-mapper", lv.Type).
					WithSubject(lv.Node).WithHint("use linear logical volumes (no type); their metadata is written with the lvm tools with activation disabled"))
			}
		}
	}
	ds.Sort()
	return ds
}

func supportedFS(t string) bool {
	switch t {
	case "ext2", "ext3", "ext4", "xfs", "vfat", "fat", "swap":
		return true
	}
	return false
}

func (a *assembly) build() (Result, error) {
	l := a.in.Layout
	start := time.Now()
	work := a.in.WorkDir
	if work == "" {
		work = os.TempDir()
	}
	if err := a.step("workdir"); err != nil {
		return Result{}, err
	}
	dir, err := os.MkdirTemp(work, "dib-disk-")
	if err != nil {
		return Result{}, err
	}
	a.work = dir
	a.stack.Push("remove "+dir, func(context.Context) error { return os.RemoveAll(dir) })

	// The image file, removed unless everything succeeds.
	a.tmpPath = a.in.Output + ".tmp"
	if err := a.step("create image"); err != nil {
		return Result{}, err
	}
	f, err := os.OpenFile(a.tmpPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return Result{}, err
	}
	renamed := false
	a.stack.Push("remove "+a.tmpPath, func(context.Context) error {
		if renamed {
			return nil
		}
		if err := os.Remove(a.tmpPath); err != nil && !os.IsNotExist(err) {
			return err
		}
		return nil
	})
	if err := f.Truncate(a.img.SizeBytes); err != nil {
		f.Close()
		return Result{}, err
	}
	a.vols[a.img.Node] = Volume{Node: a.img.Node, Offset: 0, Size: a.img.SizeBytes}
	for i := range l.PartitionTables {
		t := &l.PartitionTables[i]
		if t.Base != a.img.Node {
			continue
		}
		if err := a.step("partition table " + t.Name); err != nil {
			f.Close()
			return Result{}, err
		}
		if err := writeTable(f, t); err != nil {
			f.Close()
			return Result{}, err
		}
		for _, p := range t.Partitions {
			a.vols[p.Node] = Volume{Node: p.Node, Offset: p.StartBytes, Size: p.SizeBytes}
		}
	}
	if err := f.Close(); err != nil {
		return Result{}, err
	}
	a.phase("partition", start)

	if len(l.LVM) > 0 {
		start = time.Now()
		if err := a.lvm(); err != nil {
			return Result{}, err
		}
		a.phase("lvm", start)
	}

	for _, fs := range l.Filesystems {
		start = time.Now()
		if err := a.mkfs(&fs); err != nil {
			return Result{}, fmt.Errorf("disk: filesystem %s (%s): %w", fs.Node, fs.Type, err)
		}
		a.phase("mkfs "+fs.Node, start)
	}

	if err := a.step("rename"); err != nil {
		return Result{}, err
	}
	if err := os.Rename(a.tmpPath, a.in.Output); err != nil {
		return Result{}, err
	}
	renamed = true
	res := Result{Path: a.in.Output, Timings: a.timings}
	for _, v := range a.vols {
		res.Volumes = append(res.Volumes, v)
	}
	sort.Slice(res.Volumes, func(i, j int) bool { return res.Volumes[i].Node < res.Volumes[j].Node })
	return res, nil
}

// volume returns the byte range of node in the image.
func (a *assembly) volume(node string) (Volume, error) {
	v, ok := a.vols[node]
	if why, bad := a.noVolume[node]; bad {
		return Volume{}, fmt.Errorf("%s", why)
	}
	if !ok {
		return Volume{}, fmt.Errorf("device %q is not on image %s", node, a.img.Node)
	}
	return v, nil
}

// source returns the directory holding the content of the filesystem
// mounted at mp and the mount points of other filesystems below it. The
// mount point resolves inside the tree, as in the image.
func (a *assembly) source(mp string) (string, []string, error) {
	if mp == "" || mp == "none" {
		return "", nil, nil
	}
	dir, err := safepath.InRoot("mount point", a.in.Tree, mp)
	if err != nil {
		return "", nil, err
	}
	var nested []string
	for _, f := range a.in.Layout.Filesystems {
		m := f.MountPoint
		if m == "" || m == "none" || m == mp {
			continue
		}
		if mp == "/" || strings.HasPrefix(m, mp+"/") {
			nested = append(nested, m)
		}
	}
	sort.Strings(nested)
	return dir, nested, nil
}

// workPath is the scratch path of a layout node in the work directory.
// A node name is one path component; it is checked here, where it
// becomes a path, as well as by the compiler.
func (a *assembly) workPath(node, suffix string) (string, error) {
	if err := safepath.Name("block-device node name", node); err != nil {
		return "", err
	}
	return safepath.Under("work file", a.work, node+suffix)
}
