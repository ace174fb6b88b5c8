package disk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dibuild/dib/runtime/qcow2"
	"github.com/dibuild/dib/runtime/shell"
)

// Output is one image file to produce from the assembled raw disk (or,
// for squashfs, from the tree).
type Output struct {
	// Format is raw, qcow2, vhd, vhd-fixed, vmdk, vhdx, vdi or squashfs
	// (DIB's -t names; vhd is the dynamic VHD DIB makes, vhd-fixed the
	// fixed one clouds such as Azure want).
	Format string
	// Path is the file to write (DIB names squashfs NAME.squash), written
	// as Path+".tmp" and renamed on
	// success.
	Path string
	// Compress compresses qcow2 clusters (native, on every core).
	Compress bool
	// QemuImgOptions are extra `-o` options for qemu-img formats (DIB's
	// QEMU_IMG_OPTIONS).
	QemuImgOptions string
}

// Formats lists the output formats WriteOutputs knows.
func Formats() []string {
	return []string{"qcow2", "raw", "squashfs", "vdi", "vhd", "vhd-fixed", "vhdx", "vmdk"}
}

// OutputsInput is what WriteOutputs converts.
type OutputsInput struct {
	Raw  string // the assembled raw disk image
	Tree string // the root tree (squashfs)
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

func writeOutput(o *op, in OutputsInput, out Output) error {
	tmp := out.Path + ".tmp"
	defer os.Remove(tmp)
	var err error
	switch out.Format {
	case "qcow2":
		if out.QemuImgOptions != "" {
			err = qemuImg(o, in.Raw, tmp, "qcow2", out.Compress, out.QemuImgOptions)
		} else {
			_, err = qcow2.Convert(o.ctx, in.Raw, tmp, qcow2.Options{Compress: out.Compress})
		}
	case "vhd":
		err = qemuImg(o, in.Raw, tmp, "vpc", false, joinOpts("subformat=dynamic,force_size=on", out.QemuImgOptions))
	case "vhd-fixed":
		err = qemuImg(o, in.Raw, tmp, "vpc", false, joinOpts("subformat=fixed,force_size=on", out.QemuImgOptions))
	case "vmdk", "vhdx", "vdi":
		err = qemuImg(o, in.Raw, tmp, out.Format, false, out.QemuImgOptions)
	case "squashfs":
		// Every requested squashfs is made exactly once, whatever its
		// position in the list (DIB's loop reads the wrong index and
		// makes none or two, dib-reference.md §2.2).
		if in.Tree == "" {
			return errors.New("disk: squashfs output needs the tree")
		}
		err = o.run(nil, "mksquashfs", in.Tree, tmp, "-comp", "xz", "-noappend", "-quiet", "-no-progress")
	default:
		return fmt.Errorf("disk: unknown output format %q (known: %s)", out.Format, strings.Join(Formats(), ", "))
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
	defer os.Remove(tmp)
	if err := o.run(nil, "cp", "--sparse=always", "--reflink=auto", src, tmp); err != nil {
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
