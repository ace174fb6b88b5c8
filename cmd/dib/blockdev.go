package main

import (
	"encoding/json"
	"fmt"

	"github.com/dibuild/dib/compiler/blockdev"
	"github.com/dibuild/dib/compiler/plan/render"
	"github.com/dibuild/dib/spec/diag"
)

// BlockdevCmd compiles a DIB block-device configuration for a given image
// size and prints the layout.
type BlockdevCmd struct {
	File       string `arg:"" help:"Block-device YAML (DIB_BLOCK_DEVICE_CONFIG format, tree or graph syntax), or - for stdin."`
	Size       string `help:"Image size (4GiB, 10G, 2048MiB, …); used by local_loop entries without a size." default:"4GiB"`
	SectorSize int    `help:"Logical sector size, overriding local_loop block_size (512 or 4096); 0 keeps the config's." default:"0"`
	RootLabel  string `help:"Root filesystem label (--root-label); default cloudimg-rootfs, img-rootfs for xfs."`
	FSType     string `name:"fs-type" help:"Root filesystem type (DIB_ROOT_FSTYPE)." default:"ext4"`
	MkfsOpts   string `name:"mkfs-options" help:"Extra mkfs options for the root filesystem (MKFS_OPTS)."`
	Seed       string `help:"Seed for the generated UUIDs and GUIDs (use the image name)." default:"image"`
	JSON       bool   `help:"Print the layout as JSON."`
}

// Help shows an example.
func (c *BlockdevCmd) Help() string {
	return `Shows the exact disk DIB would create from a block-device configuration:
partitions with start, end and size, LVM, filesystems, mounts, fstab and the
creation order.

Example:
  dib blockdev elements/block-device-efi/block-device-default.yaml --size 4GiB
  dib blockdev - --size 10G --json < my-layout.yaml`
}

// Run parses, compiles and renders.
func (c *BlockdevCmd) Run(g *Globals) error {
	name, src, err := g.readInput(c.File)
	if err != nil {
		return err
	}
	size, err := blockdev.ParseSize(c.Size)
	if err != nil {
		return fmt.Errorf("--size: %v", err)
	}
	cfg, ds := blockdev.ParseYAML(src)
	ds = blockdev.Relocate(ds, "", name, nil)
	if ds.HasErrors() {
		_ = ds.WriteText(g.Stderr)
		return exitError{code: exitFailed}
	}
	p := blockdev.Params{ImageSize: size, RootLabel: c.RootLabel, RootFSType: c.FSType, SectorSize: c.SectorSize, Seed: c.Seed}
	// As disk-image-create: the ext4 root options go in when getval
	// root-fstype says ext4.
	p.RootFSOpts = c.MkfsOpts
	if blockdev.GetVal(cfg, p).RootFSType == "ext4" {
		p.RootFSOpts = blockdev.DefaultRootFSOpts("ext4", c.MkfsOpts)
	}
	l, cds := blockdev.Compile(cfg, p)
	cds = blockdev.Relocate(cds, "", name, blockdev.YAMLLocator(src))
	ds = append(ds, cds...)
	if len(ds) > 0 {
		_ = diag.Diagnostics(ds).WriteText(g.Stderr)
	}
	if l == nil {
		return exitError{code: exitFailed}
	}
	if c.JSON {
		enc := json.NewEncoder(g.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(l); err != nil {
			return err
		}
	} else if err := render.Layout(g.Stdout, l); err != nil {
		return err
	}
	if ds.HasErrors() {
		return exitError{code: exitFailed}
	}
	return nil
}
