package disk

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dibuild/dib/compiler/plan/format"
	"github.com/dibuild/dib/runtime/directio"
	"github.com/dibuild/dib/runtime/qcow2"
	"github.com/dibuild/dib/runtime/shell"
)

// Output is one image file to produce from the assembled raw disk.
type Output struct {
	// Format is a disk format of the format table (DIB's -t names).
	Format string
	// Subformat is qemu-img's subformat (vhd: dynamic, as DIB makes it,
	// or fixed, which clouds such as Azure want).
	Subformat string
	// Path is the file to write, written as Path+".tmp" and renamed on
	// success.
	Path string
	// Compress compresses qcow2 clusters (native, on every core).
	Compress bool
	// QemuImgOptions are extra `-o` options for qemu-img formats (DIB's
	// QEMU_IMG_OPTIONS).
	QemuImgOptions string
	// Reuse and Index, for a compressed qcow2 written natively: an
	// earlier image whose clusters are copied (qcow2.Options), and where
	// to put the new image's cluster index (nil: none kept).
	Reuse *qcow2.Reference
	Index *qcow2.Index
	// Stats, when not nil, is set to the native qcow2 writer's counts.
	Stats *qcow2.Stats
}

// OutputsInput is what WriteOutputs converts.
type OutputsInput struct {
	Raw string // the assembled raw disk image
	// MoveRaw lets the raw output take the assembled file by rename (it is
	// then written last, after every conversion read it, as DIB does).
	MoveRaw bool
	Outputs []Output
	Runner  *shell.Runner
}

// WriteOutputs writes every output. Each goes to a temporary name first,
// so a failure leaves no partial file at any Path; outputs already
// finished stay.
func WriteOutputs(ctx context.Context, in OutputsInput) error {
	o := newOp(ctx, in.Runner, 0)
	var raws []Output
	for _, out := range in.Outputs {
		if out.Format == "raw" {
			raws = append(raws, out)
			continue
		}
		if err := writeOutput(o, in, out); err != nil {
			return err
		}
	}
	for i, out := range raws {
		move := in.MoveRaw && i == len(raws)-1
		if err := writeRaw(o, in.Raw, out.Path, move); err != nil {
			return err
		}
	}
	return nil
}

// writeOutput converts the raw image to a disk format of the format
// table: qcow2 natively unless qemu-img options are given, the others with
// qemu-img convert.
func writeOutput(o *op, in OutputsInput, out Output) error {
	f, ok := format.Lookup(out.Format)
	if !ok || f.Source != format.Disk || f.QemuImg == "" {
		return fmt.Errorf("disk: %q is not a disk output format written from the raw image", out.Format)
	}
	tmp := out.Path + ".tmp"
	defer os.Remove(tmp)
	var err error
	switch {
	case f.Name == "qcow2" && out.QemuImgOptions == "":
		var st qcow2.Stats
		st, err = qcow2.Convert(o.ctx, in.Raw, tmp, qcow2.Options{Compress: out.Compress, Reuse: out.Reuse, Index: out.Index})
		if out.Stats != nil {
			*out.Stats = st
		}
	case f.Name == "vhd":
		// DIB's vhd: a dynamic VHD whose size is the raw image's.
		sub := out.Subformat
		if sub == "" {
			sub = "dynamic"
		}
		err = qemuImg(o, in.Raw, tmp, f.QemuImg, false, joinOpts("subformat="+sub+",force_size=on", out.QemuImgOptions))
	default:
		opts := out.QemuImgOptions
		if out.Subformat != "" {
			opts = joinOpts("subformat="+out.Subformat, opts)
		}
		err = qemuImg(o, in.Raw, tmp, f.QemuImg, out.Compress, opts)
	}
	if err != nil {
		return fmt.Errorf("disk: %s output %s: %w", out.Format, out.Path, err)
	}
	return os.Rename(tmp, out.Path)
}

func joinOpts(a, b string) string {
	if b == "" {
		return a
	}
	return a + "," + b
}

func qemuImg(o *op, src, dst, format string, compress bool, opts string) error {
	argv := []string{"qemu-img", "convert", "-f", "raw", "-O", format}
	if compress {
		argv = append(argv, "-c")
	}
	if opts != "" {
		argv = append(argv, "-o", opts)
	}
	return o.run(nil, append(argv, src, dst)...)
}

// writeRaw renames the assembled image to dst when move is set, else
// copies it keeping holes.
func writeRaw(o *op, src, dst string, move bool) error {
	if filepath.Clean(src) == filepath.Clean(dst) {
		return nil
	}
	if move {
		if err := os.Rename(src, dst); err == nil {
			return nil
		}
	}
	tmp := dst + ".tmp"
	os.Remove(tmp)
	defer os.Remove(tmp)
	// Not cp --sparse=always: its buffered writes leave the writeback of
	// the image's data to run beside the next steps (runtime/directio).
	if err := directio.CopySparse(src, tmp, 0o644); err != nil {
		return fmt.Errorf("disk: raw output %s: %w", dst, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	if move {
		return os.Remove(src)
	}
	return nil
}
