package runtime

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/compiler/plan/dibenv"
	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/runtime/bootloader"
	"github.com/dibuild/dib/runtime/cache"
	"github.com/dibuild/dib/runtime/disk"
	"github.com/dibuild/dib/runtime/output"
	"github.com/dibuild/dib/runtime/qcow2"
	"github.com/dibuild/dib/runtime/safepath"
	"golang.org/x/sys/unix"
)

// The disk steps: image-size, partition and bootloader, and the disk-image
// outputs (the format table's disk formats).
//
// The flow follows DIB's: after post-root.d the image size is known (from
// the Dibfile, or DIB's du rule on the tree); the tree moves from
// TMP_MOUNT_PATH to $TMP_BUILD_DIR/built, the disk is assembled in user
// space (runtime/disk: partition tables written directly, each filesystem
// made from its part of the tree), built/ is removed and the image is
// mounted through loop devices at TMP_MOUNT_PATH, where block-device.d,
// pre-finalise.d, finalise.d and cleanup.d then run, as they run on DIB's
// mounted image. GRUB is installed
// from the host (runtime/bootloader) after finalise.d. Before the disk
// outputs are converted the image is unmounted.
//
// diskState is the state of one build's disk between these steps, a
// field of the Build.
type diskState struct {
	size    int64
	layout  *layout.Layout
	raw     string
	result  disk.Result
	mounted *disk.Mounted
	zeroed  bool // zeroFree ran
	// epoch is the plan's SOURCE_DATE_EPOCH of the disk (the partition
	// step's, resolved from the tree when the plan names its source): the
	// clock of the filesystems and the time later files are clamped to.
	epoch int64
}

// diskImageSize fixes the size: the Dibfile's, or DIB's rule applied to the
// tree (runtime/disk.ImageSize).
func (b *Build) diskImageSize(ctx context.Context, s *plan.Step) error {
	d := &b.disk
	is := s.ImageSize
	if is.Bytes > 0 {
		// disk-image-create exports the size it settled on, in KiB.
		d.size = is.Bytes
		b.SetEnv("DIB_IMAGE_SIZE", fmt.Sprint(d.size/1024))
		return nil
	}
	// Measured without the chroot's mounts and the apt cache.
	if err := b.teardownChroot(ctx); err != nil {
		return err
	}
	size, err := disk.ImageSize(b.Tree(), disk.SizeRule{Ext4: is.FSType == "" || is.FSType == "ext4", JournalMiB: is.JournalMiB, EFI: is.EFI, ExtraMiB: is.ExtraMiB})
	if err != nil {
		return fmt.Errorf("measuring the tree: %w", err)
	}
	d.size = size
	fmt.Fprintf(b.Log, "image size (DIB's rule on the tree): %d bytes\n", d.size)
	b.SetEnv("DIB_IMAGE_SIZE", fmt.Sprint(d.size/1024))
	return nil
}

// assembleDisk assembles the whole disk: the tree leaves the chroot, the
// layout is computed at the real size if needed, runtime/disk writes the
// tables and filesystems, and the image is mounted for the later phases.
func (b *Build) assembleDisk(ctx context.Context, s *plan.Step) error {
	d := &b.disk
	p := s.Partition
	d.layout = p.Layout
	if !p.SizeKnown || (d.size > 0 && d.size != p.PreviewSize && d.size != imageBytes(p.Layout)) {
		if p.Template == nil {
			return errors.New("the image size is computed at build time but the plan has no layout template")
		}
		l, ds := layout.Resolve(p.Template, d.size)
		if err := ds.Err(); err != nil {
			return fmt.Errorf("laying the disk out at %d bytes: %w", d.size, err)
		}
		d.layout = l
	}
	if ds := disk.Check(d.layout); ds.HasErrors() {
		return ds
	}
	// disk-image-create adds the size and the root mkfs options to the
	// block-device parameters before creating the disk.
	if err := b.AddBlockDeviceParams(imageBytes(d.layout)/1024, p.Params.RootFSOpts); err != nil {
		return err
	}
	if b.Options.DryRun {
		fmt.Fprintf(b.Shell.Out, "+ assemble disk image of %d bytes\n", imageBytes(d.layout))
		return nil
	}
	// The chroot mounts must leave the tree before it is copied; DIB's
	// finalise_base runs later, on the image, after finalise.d.
	if err := b.teardownChroot(ctx); err != nil {
		return err
	}
	raw, err := safepath.Under("image file", b.Workspace.ImageDir, b.Plan.Image.Name+".raw")
	if err != nil {
		return err
	}
	d.raw = raw
	if err := os.MkdirAll(filepath.Dir(d.raw), 0o755); err != nil {
		return err
	}
	// DIB: the tree leaves TMP_MOUNT_PATH for built/ (no lost+found that
	// would clash with the new filesystem's), the image is mounted at
	// TMP_MOUNT_PATH and the tree copied into it, built/ is emptied. Here
	// the filesystems are made from built/ and then mounted.
	ws := b.Workspace
	if err := os.RemoveAll(filepath.Join(ws.MountPath, "lost+found")); err != nil {
		return err
	}
	if err := os.Rename(ws.MountPath, ws.BuiltPath); err != nil {
		return fmt.Errorf("moving the tree to %s: %w", ws.BuiltPath, err)
	}
	if err := os.Mkdir(ws.MountPath, 0o755); err != nil {
		return err
	}
	epoch, err := b.SourceDateEpoch(ws.BuiltPath, p.Epoch)
	if err != nil {
		return err
	}
	d.epoch = epoch
	res, err := disk.Assemble(ctx, disk.Input{
		Layout: d.layout, Tree: ws.BuiltPath, Output: d.raw, WorkDir: ws.BuildDir,
		MaxOnlineResize: p.MaxOnlineResize, SourceDateEpoch: d.epoch, Runner: b.Shell,
	})
	if err != nil {
		return err
	}
	d.result = res
	b.Stack.Push("remove "+d.raw, func(context.Context) error {
		if err := os.Remove(d.raw); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	})
	for _, t := range res.Timings {
		fmt.Fprintf(b.Log, "disk: %s %s\n", t.Phase, t.Duration)
	}
	// The tree is in the image now; free built/ (a tmpfs holds it in RAM).
	if err := os.RemoveAll(ws.BuiltPath); err != nil {
		return err
	}
	m, err := disk.Mount(ctx, disk.MountInput{Layout: d.layout, Image: d.raw, Volumes: res.Volumes, Dir: ws.MountPath, Runner: b.Shell})
	if err != nil {
		return err
	}
	d.mounted = m
	b.Stack.Push("unmount "+ws.MountPath, d.unmount)
	// DIB's getval image-block-device and image-block-devices, exported
	// for block-device.d and the later phases.
	b.SetEnv("IMAGE_BLOCK_DEVICE", m.Device)
	b.SetEnv("IMAGE_BLOCK_DEVICES", blockDevices(d.layout, m.Devices))
	// DIB's `dib-block-device writefstab`: the layout's fstab in the image.
	return disk.WriteFstab(m.Root, d.layout)
}

// blockDevices is DIB's IMAGE_BLOCK_DEVICES: " [node]=device " for the
// image, then each device in node order, for `eval declare -A x=(…)`.
func blockDevices(l *layout.Layout, devs map[string]string) string {
	var b strings.Builder
	image := ""
	if len(l.Images) > 0 {
		image = l.Images[0].Node
		if dev, ok := devs[image]; ok {
			fmt.Fprintf(&b, " [%s]=%s ", image, dev)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(devs)) {
		if k != image {
			fmt.Fprintf(&b, " [%s]=%s ", k, devs[k])
		}
	}
	return b.String()
}

func (d *diskState) unmount(ctx context.Context) error {
	if d.mounted == nil {
		return nil
	}
	m := d.mounted
	d.mounted = nil
	return m.Unmount(ctx)
}

func imageBytes(l *layout.Layout) int64 {
	if l == nil || len(l.Images) == 0 {
		return 0
	}
	return l.Images[0].SizeBytes
}

// installBootloader installs GRUB into the mounted image.
func (b *Build) installBootloader(ctx context.Context, s *plan.Step) error {
	d := &b.disk
	if b.Options.DryRun {
		fmt.Fprintf(b.Shell.Out, "+ install GRUB\n")
		return nil
	}
	if d.mounted == nil {
		return errors.New("the bootloader step needs the assembled, mounted image")
	}
	bl := s.Bootloader
	serial := ""
	if bl.Serial {
		serial = bl.SerialConsole
		if serial == "" {
			serial = dibenv.SerialConsole
		}
	}
	res, err := bootloader.Install(ctx, bootloader.Input{
		Layout: d.layout, Image: d.raw, Volumes: d.result.Volumes, Root: d.mounted.Root,
		BIOS: bl.BIOS, UEFI: bl.UEFI, Cmdline: bl.Cmdline, SerialConsole: serial, TimerCheck: bl.TimerCheck, Timeout: bl.Timeout,
		WorkDir: b.Workspace.BuildDir, SourceDateEpoch: d.epoch, Runner: b.Shell,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(b.Log, "bootloader: bios=%v uefi=%v shim=%v kernels=%s\n", res.BIOS, res.UEFI, res.Shim, strings.Join(res.Kernels, " "))
	return nil
}

// writeDiskOutput writes one disk format from the unmounted raw image.
func (b *Build) writeDiskOutput(ctx context.Context, s *plan.Step) error {
	d := &b.disk
	o := s.Output
	dest, err := b.OutputPath(o.Path)
	if err != nil {
		return err
	}
	if err := b.Creating(dest); err != nil {
		return err
	}
	if b.Options.DryRun {
		fmt.Fprintf(b.Shell.Out, "+ write %s output %s\n", o.Format, dest)
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	if d.raw == "" {
		return fmt.Errorf("output %s needs the disk image, but no partition step ran", o.Format)
	}
	if err := b.finishDisk(ctx); err != nil {
		return err
	}
	// Not earlier: beside the disk snapshot of the build cache it slowed
	// that down as much as it saved (both read the image and hash).
	b.startImageSums(ctx)
	var opts []string
	for _, k := range slices.Sorted(maps.Keys(o.QemuImgOptions)) {
		opts = append(opts, k+"="+o.QemuImgOptions[k])
	}
	// raw is the last output (the plan orders it so): it takes the file.
	out := disk.Output{
		Format: o.Format, Subformat: o.Subformat, Path: dest, Compress: o.Compress, QemuImgOptions: strings.Join(opts, ","),
	}
	var reuse *qcow2Reuse
	if o.Format == "qcow2" && o.Compress && len(opts) == 0 && b.cache != nil {
		// The image's cluster index goes to the step's cache entry;
		// the newest indexed image in the cache lends its clusters.
		out.Index, out.Stats = &qcow2.Index{}, &qcow2.Stats{}
		if reuse = b.qcow2Reference(); reuse != nil {
			defer reuse.close()
			out.Reuse = reuse.ref
		}
	}
	in := disk.OutputsInput{Raw: d.raw, MoveRaw: o.Format == "raw", Runner: b.Shell, Outputs: []disk.Output{out}}
	if err := disk.WriteOutputs(ctx, in); err != nil {
		return err
	}
	if out.Index != nil {
		b.clusterIndex = out.Index
		if reuse != nil {
			fmt.Fprintf(b.Log, "dib: qcow2: %d of %d data clusters copied from the image of cache entry %.12s (%s, %s), %d deflated\n",
				out.Stats.Reused, out.Stats.DataClusters, reuse.entry.Key, reuse.entry.Image, reuse.entry.Title, out.Stats.DataClusters-out.Stats.Reused)
		}
	}
	if o.Format == "raw" {
		b.addImageOutput(dest) // the image's bytes, moved or copied
	} else {
		b.AddOutput(dest)
	}
	return nil
}

// finishDisk readies the image for the outputs, once: the tree finished
// (DIB's finalise_base), free blocks trimmed, the image unmounted and its
// free blocks zeroed.
func (b *Build) finishDisk(ctx context.Context) error {
	d := &b.disk
	if err := b.beforeOutputs(ctx); err != nil {
		return err
	}
	if d.mounted != nil {
		// What finalise.d and cleanup.d deleted must not stay in the
		// image's free blocks.
		n, err := d.mounted.Trim()
		if err != nil {
			return err
		}
		fmt.Fprintf(b.Log, "disk: discarded %d bytes of free blocks\n", n)
	}
	if err := d.unmount(ctx); err != nil {
		return err
	}
	return b.zeroFree(ctx, d.epoch)
}

// finishImage readies the image for the outputs, as the first disk
// output does, and returns its path; "" when no disk was assembled.
// Nothing may change the image afterwards: the build cache keeps it as the
// final state of a build whose outputs all come from the image (the
// compiler marks that state a snapshot point), so a plan that only adds
// an output restores it and runs only that output (useImage). The outputs
// only read it; raw, last, moves it.
func (b *Build) finishImage(ctx context.Context) (string, error) {
	d := &b.disk
	if d.raw == "" || b.Options.DryRun {
		return "", nil
	}
	if _, err := os.Stat(d.raw); err != nil {
		return "", fmt.Errorf("the disk image: %w", err)
	}
	if err := b.finishDisk(ctx); err != nil {
		return "", err
	}
	return d.raw, nil
}

// useImage makes the image at path, finished and restored from the build
// cache, the build's disk, for the outputs.
func (b *Build) useImage(path string) error {
	d := &b.disk
	if d.mounted != nil {
		return errors.New("a disk image is mounted: a cached one cannot replace it")
	}
	d.raw, d.zeroed = path, true
	return nil
}

// startImageSums starts computing the checksums of the finished image when
// the raw output will take it by rename (the same filesystem) and its
// checksum step will run: they are computed while the other outputs are
// written from the image, instead of after them (2.5 s of sha256 for the
// VM example's 4 GiB image, on one core, most of it beside the qcow2
// output). The checksum step uses them only for the very file they were
// computed from (output.Precomputed).
func (b *Build) startImageSums(ctx context.Context) {
	if b.imageSums != nil || b.Options.DryRun {
		return
	}
	runs := func(i int) bool { return b.cache == nil || b.cache.dec.Steps[i].Action == cache.Run }
	var raw *plan.Output
	for i, s := range b.Plan.Steps {
		if s.Kind == plan.KindOutput && s.Output != nil && s.Output.Format == "raw" && runs(i) {
			raw = s.Output
		}
	}
	if raw == nil {
		return // none, or restored from the cache: another file
	}
	for i, s := range b.Plan.Steps {
		if s.Kind != plan.KindChecksum || s.Checksum == nil || s.Checksum.Path != raw.Path {
			continue
		}
		if !runs(i) {
			return // its files come from the cache
		}
		dest, err := b.OutputPath(raw.Path)
		if err != nil || !sameDevice(b.disk.raw, filepath.Dir(dest)) {
			return
		}
		pre, err := output.Precompute(ctx, b.disk.raw, s.Checksum.Algorithms)
		if err != nil {
			return // the checksum step reads the file itself
		}
		b.imageSums = pre
		b.Stack.Push("stop the image's checksums", func(context.Context) error {
			pre.Stop()
			return nil
		})
		return
	}
}

// sameDevice reports whether a and b are on one filesystem (a rename
// between them keeps the inode).
func sameDevice(a, b string) bool {
	var sa, sb unix.Stat_t
	return unix.Stat(a, &sa) == nil && unix.Stat(b, &sb) == nil && sa.Dev == sb.Dev
}

// zeroFree runs disk.Finish, once, on the unmounted image: the free
// blocks of every ext2/3/4 and FAT filesystem are zeroed (the trim before
// unmounting cannot reach blocks the kernel released only at unmount) and
// each ext2/3/4 filesystem is normalized to the plan's SOURCE_DATE_EPOCH.
func (b *Build) zeroFree(ctx context.Context, epoch int64) error {
	d := &b.disk
	if d.zeroed || d.raw == "" {
		return nil
	}
	d.zeroed = true
	done, err := disk.Finish(ctx, b.Shell, d.raw, d.layout, d.result.Volumes, epoch)
	for _, fsys := range d.layout.Filesystems {
		if got, ok := done.Free[fsys.Node]; ok {
			fmt.Fprintf(b.Log, "disk: %s: %d bytes free, %d bytes zeroed\n", fsys.Node, got.Free, got.NonZero)
		}
		if why, ok := done.NotNormalized[fsys.Node]; ok {
			fmt.Fprintf(b.Log, "disk: %s: %s: the image is not reproducible\n", fsys.Node, why)
		}
	}
	return err
}
