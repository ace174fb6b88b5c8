package compiler

import (
	"fmt"
	"strings"

	"github.com/goccy/go-yaml"

	"github.com/dibuild/dib/compiler/blockdev"
	"github.com/dibuild/dib/compiler/element"
	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/spec"
	"github.com/dibuild/dib/spec/diag"
)

// diskFormats are the outputs made from the assembled disk image; the
// others (tar, tgz, squashfs, docker, aci) are made from the tree.
var diskFormats = map[string]bool{"qcow2": true, "raw": true, "vhd": true, "vhdx": true, "vmdk": true, "vdi": true}

func isDiskFormat(f string) bool { return diskFormats[f] }

// needsDisk reports whether any output is a disk image. DIB always builds
// a disk; dib skips partitioning and mkfs when only tree formats are asked
// for, which is what makes a tarball build fast.
func needsDisk(img *spec.Image) bool {
	if img.Ramdisk && img.KeyPointer("outputs") == "" {
		return false // a ramdisk build writes no image by default
	}
	for _, o := range img.Outputs {
		if isDiskFormat(o.Format) {
			return true
		}
	}
	return false
}

// diskSteps adds the image-size and partition steps. It returns the key of
// the image-size step, the key of the last step, the layout, the key of
// the step that leaves the raw image, and the label of the config used.
func (b *builder) diskSteps(f *spec.File, img *spec.Image, res *element.Result, envb *envBuilder, last string, ds *diag.Diagnostics) (string, string, *layout.Layout, string, string) {
	var cfg *blockdev.Config
	var cds diag.Diagnostics
	var rawConfig any
	label := ""
	switch {
	case img.BlockDevice != nil && img.BlockDevice.Config != nil:
		rawConfig = img.BlockDevice.Config
		cfg, cds = blockdev.Parse(img.BlockDevice.Config)
		cds = blockdev.Relocate(cds, img.BlockDevice.Pointer, f.Path, f.Locate)
		label = "Dibfile " + f.Path
	case res.BlockDevice.Fallback || len(res.BlockDevice.Content) == 0:
		cfg, cds = blockdev.ParseYAML([]byte(blockdev.FallbackConfig))
		_ = yaml.Unmarshal([]byte(blockdev.FallbackConfig), &rawConfig)
		label = element.FallbackBlockDevice
	default:
		cfg, cds = blockdev.ParseYAML(res.BlockDevice.Content)
		_ = yaml.Unmarshal(res.BlockDevice.Content, &rawConfig)
		for i := range cds {
			cds[i].Subject = res.BlockDevice.Element
			cds[i].Message = res.BlockDevice.File + ": " + cds[i].Message
		}
		label = res.BlockDevice.Label
	}
	*ds = append(*ds, cds...)
	if cds.HasErrors() {
		return "", last, nil, "", label
	}
	efi := hasElement(res, "block-device-efi") || hasElement(res, "block-device-efi-4k") || hasElement(res, "block-device-efi-lvm")
	size := &plan.ImageSize{Bytes: img.ImageSize, FSType: img.FSType, EFI: efi}
	if img.ImageSize == 0 {
		size.Rule = "DIB's rule: du of the tree / 0.6"
		if img.FSType == "ext4" || img.FSType == "" {
			size.Rule += " + 64 MiB journal"
		}
		if efi {
			size.Rule += " + 525 MiB EFI padding"
		}
		size.Rule += ", rounded up to 64 KiB"
	} else {
		size.Rule = "given in the Dibfile"
	}
	sizeKey := b.add(plan.Step{Kind: plan.KindImageSize, Title: "compute image size", Where: plan.Host, Deps: []string{last},
		Origin: originOf(f, img, "image-size"), ImageSize: size})
	previewSize := img.ImageSize
	if previewSize == 0 {
		previewSize = PreviewSize
	}
	params := blockdev.Params{
		ImageSize:  previewSize,
		RootLabel:  img.RootLabel,
		RootFSType: img.FSType,
		RootFSOpts: blockdev.DefaultRootFSOpts(img.FSType, img.MkfsOptions),
		Seed:       img.Name,
	}
	lay, lds := blockdev.Compile(cfg, params)
	if img.BlockDevice != nil && img.BlockDevice.Config != nil {
		lds = blockdev.Relocate(lds, img.BlockDevice.Pointer, f.Path, f.Locate)
	} else {
		for i := range lds {
			if lds[i].Subject == "" {
				lds[i].Subject = "block-device config " + label
			}
		}
	}
	*ds = append(*ds, lds...)
	if lds.HasErrors() || lay == nil {
		if lds.HasErrors() && img.ImageSize == 0 {
			(*ds)[len(*ds)-1].Hint = fmt.Sprintf("the layout was checked at the preview size %s; set image-size if the config needs more", blockdev.FormatBytes(PreviewSize))
		}
		return sizeKey, last, nil, "", label
	}
	for _, fs := range lay.Filesystems {
		if fs.Type == "vfat" || fs.Type == "fat" {
			b.efi = true
		}
	}
	part := &plan.Partition{Layout: lay, SizeKnown: img.ImageSize > 0, Source: label, Config: rawConfig,
		MaxOnlineResize: img.MaxOnlineResize,
		Params:          plan.PartitionParams{RootLabel: params.RootLabel, RootFSType: params.RootFSType, RootFSOpts: params.RootFSOpts, Seed: params.Seed}}
	if img.ImageSize == 0 {
		part.PreviewSize = PreviewSize
	}
	// The partition step assembles the whole disk (tables, every
	// filesystem with its part of the tree) and mounts it through loop
	// devices for the late phases: it runs every mkfs tool.
	tools := []string{"losetup"}
	for _, fs := range lay.Filesystems {
		tools = append(tools, mkfsTools(fs.Type)...)
	}
	if len(lay.LVM) > 0 {
		tools = append(tools, "pvcreate", "vgcreate", "lvcreate", "pvs")
	}
	partKey := b.add(plan.Step{Kind: plan.KindPartition, Title: "partition disk", Where: plan.Host, Deps: []string{sizeKey}, Tools: tools,
		Origin: originOf(f, img, "block-device"), Partition: part})
	return sizeKey, partKey, lay, partKey, label
}

// filesystemSteps adds one step per filesystem of the layout: mkfs with
// the tree's part copied in (mkfs.ext4 -d, mtools for vfat).
func (b *builder) filesystemSteps(lay *layout.Layout, last string) string {
	mounts := map[string]string{}
	for _, m := range lay.Mounts {
		mounts[m.Filesystem] = m.MountPoint
	}
	for _, fs := range lay.Filesystems {
		st := &plan.Filesystem{Node: fs.Node, Type: fs.Type, Label: fs.Label, UUID: fs.UUID, MountPoint: mounts[fs.Node], Options: strings.Join(fs.Opts, " ")}
		title := "filesystem " + fs.Node
		if st.MountPoint != "" {
			title += " (" + st.MountPoint + ")"
		}
		last = b.add(plan.Step{Kind: plan.KindFilesystem, Title: title, Where: plan.Host, Deps: []string{last}, Tools: mkfsTools(fs.Type), Filesystem: st})
	}
	return last
}

func mkfsTools(t string) []string {
	switch t {
	case "vfat", "fat":
		return []string{"mkfs.vfat", "mcopy", "mmd"}
	case "swap":
		return []string{"mkswap"}
	case "xfs":
		return []string{"mkfs.xfs", "losetup"}
	case "ext2", "ext3", "ext4":
		return []string{"mke2fs"}
	default:
		return []string{"mkfs." + t}
	}
}

// outputs converts the Dibfile outputs to plan outputs with DIB's names.
func outputs(img *spec.Image) []plan.Output {
	var out []plan.Output
	for _, o := range img.Outputs {
		po := plan.Output{Format: o.Format, Path: img.Name + "." + outputExt(o.Format), Compress: o.Compress && o.Format == "qcow2",
			Subformat: o.Subformat, DockerTarget: o.Target, Checksums: img.Checksum}
		if len(o.QemuImgOptions) > 0 {
			po.QemuImgOptions = map[string]string{}
			for _, kv := range o.QemuImgOptions {
				po.QemuImgOptions[kv.Key] = kv.Value
			}
		}
		out = append(out, po)
	}
	return out
}

// outputExt is DIB's file extension per format: squashfs is NAME.squash;
// docker, which DIB imports into a daemon, is a docker-load archive here.
func outputExt(format string) string {
	switch format {
	case "squashfs":
		return "squash"
	case "docker":
		return "docker.tar"
	default:
		return format
	}
}

func outputTools(format string) []string {
	switch format {
	case "tar", "docker", "aci":
		return []string{"tar"}
	case "tgz":
		return []string{"tar", "gzip"}
	case "squashfs":
		return []string{"mksquashfs"}
	case "raw", "qcow2":
		return nil // written natively
	default:
		return []string{"qemu-img"}
	}
}

// Relayout computes a partition step's layout again at the real image
// size, once the runtime has measured the tree (DIB's du rule). The config
// and parameters are the plan's, so a plan file is enough.
func Relayout(p *plan.Partition, size int64) (*layout.Layout, error) {
	cfg, ds := blockdev.Parse(integral(p.Config))
	if err := ds.Err(); err != nil {
		return nil, err
	}
	lay, ds := blockdev.Compile(cfg, blockdev.Params{
		ImageSize: size, RootLabel: p.Params.RootLabel, RootFSType: p.Params.RootFSType,
		RootFSOpts: p.Params.RootFSOpts, Seed: p.Params.Seed,
	})
	if err := ds.Err(); err != nil {
		return nil, err
	}
	return lay, nil
}

// integral turns the float64 numbers a JSON plan file decodes into back
// into the integers the YAML config had.
func integral(v any) any {
	switch x := v.(type) {
	case float64:
		if x == float64(int64(x)) {
			return int64(x)
		}
		return x
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = integral(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = integral(e)
		}
		return out
	default:
		return v
	}
}
