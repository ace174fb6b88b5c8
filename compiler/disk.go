package compiler

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"

	"github.com/dibuild/dib/compiler/blockdev"
	"github.com/dibuild/dib/compiler/element"
	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/compiler/plan/format"
	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/spec"
	"github.com/dibuild/dib/spec/diag"
)

// needsDisk reports whether any output is a disk image. DIB always builds
// a disk; dib skips partitioning and mkfs when only tree formats are asked
// for, which is what makes a tarball build fast.
func needsDisk(img *spec.Image) bool {
	if img.Ramdisk && img.KeyPointer("outputs") == "" {
		return false // a ramdisk build writes no image by default
	}
	for _, o := range img.Outputs {
		if format.IsDisk(o.Format) {
			return true
		}
	}
	return false
}

// checkInlineBlockDevice compiles the Dibfile's inline block-device
// configuration of an image whose outputs make no disk: nothing uses it,
// but a broken configuration is reported rather than ignored.
func checkInlineBlockDevice(f *spec.File, img *spec.Image, ds *diag.Diagnostics) {
	if img.BlockDevice == nil || img.BlockDevice.Config == nil {
		return
	}
	cfg, cds := blockdev.Parse(img.BlockDevice.Config)
	if !cds.HasErrors() {
		size := img.ImageSize
		if size == 0 {
			size = PreviewSize
		}
		_, lds := blockdev.Compile(cfg, blockdev.Params{ImageSize: size, RootLabel: img.RootLabel, RootFSType: img.FSType,
			RootFSOpts: blockdev.DefaultRootFSOpts(img.FSType, img.MkfsOptions), Seed: img.Name})
		cds = append(cds, lds...)
	}
	for _, d := range blockdev.Relocate(cds, img.BlockDevice.Pointer, f.Path, f.Locate) {
		if d.Severity == diag.Error && d.Hint == "" {
			d.Hint = "no output of this image is a disk, but the block-device configuration is checked all the same"
		}
		*ds = append(*ds, d)
	}
}

// diskSteps adds the image-size and partition steps after last. It
// returns the key of the last step and of the step that leaves the raw
// image ("" when ds has errors).
func (b *builder) diskSteps(f *spec.File, img *spec.Image, res *element.Result, envb *envBuilder, last string, ds *diag.Diagnostics) (string, string) {
	if img.FSType != "" && !layout.CanMakeFS(img.FSType) {
		line, col := f.Locate(img.KeyPointer("fs-type"))
		*ds = append(*ds, diag.Errorf("dib cannot make %s filesystems", img.FSType).At(f.Path, line, col).
			WithHint("dib makes %s; fs-type is the root filesystem of the disk outputs", strings.Join(layout.FSTypes(), ", ")))
		return last, ""
	}
	src, cds := blockDeviceConfig(f, img, res)
	*ds = append(*ds, cds...)
	if cds.HasErrors() {
		return last, ""
	}
	size, journal := imageSize(img, res, envb, ds)
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
		RootFSOpts: blockdev.RootFSOpts(img.FSType, img.MkfsOptions, journal, img.Distro.Release),
		Seed:       img.Name,
	}
	tpl, lay, lds := blockdev.CompileTemplate(src.cfg, params)
	lds = locateLayoutDiags(lds, f, img, res, src.label)
	*ds = append(*ds, lds...)
	if lds.HasErrors() || lay == nil {
		if ld := (*ds)[len(*ds)-1]; lds.HasErrors() && img.ImageSize == 0 && ld.Hint == "" && strings.Contains(ld.Message, "smaller than the block device configuration") {
			(*ds)[len(*ds)-1].Hint = fmt.Sprintf("the layout was checked at the preview size %s; set image-size if the config needs more", blockdev.FormatBytes(PreviewSize))
		}
		return last, ""
	}
	for _, fs := range lay.Filesystems {
		if fs.Type == "vfat" || fs.Type == "fat" {
			b.efi = true
		}
	}
	part := &plan.Partition{Layout: lay, SizeKnown: img.ImageSize > 0, Source: src.label, Template: tpl, Config: src.yaml,
		MaxOnlineResize: img.MaxOnlineResize, Epoch: epoch(img),
		Params: plan.PartitionParams{RootLabel: params.RootLabel, RootFSType: params.RootFSType, RootFSOpts: params.RootFSOpts}}
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
		tools = append(tools, "pvcreate", "vgcreate", "lvcreate", "pvs", "lvs")
	}
	partKey := b.add(plan.Step{Kind: plan.KindPartition, Title: "partition disk", Where: plan.Host, Deps: []string{sizeKey}, Tools: tools,
		Origin: originOf(f, img, "block-device"), Partition: part})
	return partKey, partKey
}

// blockDeviceSource is an image's block-device config: parsed, as YAML
// text (what elements read as DIB's config.yaml) and where it came from.
type blockDeviceSource struct {
	cfg   *blockdev.Config
	yaml  string
	label string
}

// blockDeviceConfig is the block-device config DIB uses, in DIB's order:
// the Dibfile's, DIB_BLOCK_DEVICE_CONFIG, an element's, else the fallback.
// Diagnostics point into where the config came from.
func blockDeviceConfig(f *spec.File, img *spec.Image, res *element.Result) (blockDeviceSource, diag.Diagnostics) {
	var src blockDeviceSource
	var cds diag.Diagnostics
	switch {
	case img.BlockDevice != nil && img.BlockDevice.Config != nil:
		if y, err := yaml.Marshal(img.BlockDevice.Config); err == nil {
			src.yaml = string(y)
		}
		src.cfg, cds = blockdev.Parse(img.BlockDevice.Config)
		cds = blockdev.Relocate(cds, img.BlockDevice.Pointer, f.Path, f.Locate)
		src.label = "Dibfile " + f.Path
	case res.BlockDevice.ReadErr != nil:
		cds = diag.Diagnostics{diag.Errorf("cannot read %s: %v", res.BlockDevice.File, res.BlockDevice.ReadErr).
			At(res.BlockDevice.Label, 0, 0).WithSubject(res.BlockDevice.Element)}
		src.label = res.BlockDevice.Label
	case envBlockDevice(img) != nil:
		ev := envBlockDevice(img)
		content, err := envBlockDeviceContent(f, ev.Value)
		if err != nil {
			return src, diag.Diagnostics{diag.Errorf("DIB_BLOCK_DEVICE_CONFIG: %v", err).At(f.Path, ev.Line, ev.Col).WithSubject(ev.Name)}
		}
		src.cfg, cds = blockdev.ParseYAML(content)
		src.yaml = string(content)
		for i := range cds {
			cds[i].Message = "DIB_BLOCK_DEVICE_CONFIG: " + cds[i].Message
			if cds[i].File == "" {
				cds[i].File, cds[i].Line, cds[i].Col = f.Path, ev.Line, ev.Col
			}
		}
		src.label = "DIB_BLOCK_DEVICE_CONFIG (env)"
	case res.BlockDevice.Fallback || len(res.BlockDevice.Content) == 0:
		src.cfg, cds = blockdev.ParseYAML([]byte(blockdev.FallbackConfig))
		src.yaml = blockdev.FallbackConfig
		src.label = element.FallbackBlockDevice
	default:
		src.cfg, cds = blockdev.ParseYAML(res.BlockDevice.Content)
		src.yaml = string(res.BlockDevice.Content)
		for i := range cds {
			// Positions are in the element's file: name it (its source
			// and path), with the element as the subject.
			cds[i].Subject = res.BlockDevice.Element
			cds[i].File = res.BlockDevice.Label
		}
		src.label = res.BlockDevice.Label
	}
	return src, cds
}

// imageSize is the image-size step: the Dibfile's size, or DIB's rule with
// the journal and extra size of the build's environment; and the journal
// size in MiB.
func imageSize(img *spec.Image, res *element.Result, envb *envBuilder, ds *diag.Diagnostics) (*plan.ImageSize, int64) {
	efi := hasElement(res, "block-device-efi") || hasElement(res, "block-device-efi-4k") || hasElement(res, "block-device-efi-lvm")
	journal, extra := diskVars(envb, ds)
	size := &plan.ImageSize{Bytes: img.ImageSize, FSType: img.FSType, EFI: efi, ExtraMiB: extra}
	if journal != blockdev.DefaultJournalMiB {
		size.JournalMiB = journal
	}
	if img.ImageSize > 0 {
		size.Rule = "given in the Dibfile"
		return size, journal
	}
	size.Rule = "DIB's rule: du of the tree / 0.6"
	if extra > 0 {
		size.Rule = fmt.Sprintf("DIB's rule: du of the tree + %g MiB (DIB_IMAGE_EXTRA_SIZE)", extra)
	}
	if img.FSType == "ext4" || img.FSType == "" {
		size.Rule += fmt.Sprintf(" + %d MiB journal", journal)
	}
	if efi {
		size.Rule += " + 525 MiB EFI padding"
	}
	size.Rule += ", rounded up to 64 KiB"
	return size, journal
}

// locateLayoutDiags points the layout's diagnostics into the config they
// come from: the Dibfile, an element's file (with the element as subject),
// or names the config otherwise.
func locateLayoutDiags(lds diag.Diagnostics, f *spec.File, img *spec.Image, res *element.Result, label string) diag.Diagnostics {
	switch {
	case img.BlockDevice != nil && img.BlockDevice.Config != nil:
		return blockdev.Relocate(lds, img.BlockDevice.Pointer, f.Path, f.Locate)
	case !res.BlockDevice.Fallback && len(res.BlockDevice.Content) > 0:
		lds = blockdev.Relocate(lds, "", res.BlockDevice.Label, blockdev.YAMLLocator(res.BlockDevice.Content))
		for i := range lds {
			lds[i].Subject = res.BlockDevice.Element
		}
	default:
		for i := range lds {
			if lds[i].Subject == "" {
				lds[i].Subject = "block-device config " + label
			}
		}
	}
	return lds
}

// diskVars reads DIB_JOURNAL_SIZE (MiB, a whole number; default 64) and
// DIB_IMAGE_EXTRA_SIZE (MiB, DIB's awk reads a number) from the build's
// environment, as disk-image-create does.
func diskVars(envb *envBuilder, ds *diag.Diagnostics) (journal int64, extra float64) {
	journal = blockdev.DefaultJournalMiB
	bad := func(name, v, want string) {
		d := diag.Errorf("%s=%q: %s", name, v, want).WithSubject(name)
		if o := envb.vars[name].Origin; o.Kind == "dibfile" {
			d.File, d.Line, d.Col = o.File, o.Line, o.Col
		}
		*ds = append(*ds, d)
	}
	// disk-image-create reads both before any environment.d file runs.
	if v, ok := envb.given("DIB_JOURNAL_SIZE"); ok && strings.TrimSpace(v) != "" {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 1 || n > 1<<20 {
			bad("DIB_JOURNAL_SIZE", v, "not a journal size in MiB (a whole number, e.g. 128)")
		} else {
			journal = n
		}
	}
	if v, ok := envb.given("DIB_IMAGE_EXTRA_SIZE"); ok && strings.TrimSpace(v) != "" {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || f <= 0 || f > 1<<30 || math.IsNaN(f) {
			bad("DIB_IMAGE_EXTRA_SIZE", v, "not an extra size in MiB (a number, e.g. 512)")
		} else {
			extra = f
		}
	}
	return journal, extra
}

func mkfsTools(t string) []string {
	switch t {
	case "vfat", "fat":
		return []string{"mkfs.vfat", "mcopy", "mmd"}
	case "swap":
		return []string{"mkswap"}
	case "xfs":
		return []string{"mkfs.xfs", "losetup", "cp"}
	case "ext2", "ext3", "ext4":
		// dumpe2fs: the free blocks are zeroed before the disk outputs.
		return []string{"mke2fs", "dumpe2fs"}
	default:
		return []string{"mkfs." + t}
	}
}

// outputs converts the Dibfile outputs to plan outputs with DIB's names
// (the format table's extensions).
func outputs(img *spec.Image) []plan.Output {
	var out []plan.Output
	for _, o := range img.Outputs {
		f, _ := format.Lookup(o.Format)
		po := plan.Output{Format: o.Format, Path: img.Name + "." + f.Ext, Compress: o.Compress && f.Takes(format.OptCompress),
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

// elementOutputs adds the outputs the build's elements write (the format
// table's Element formats) that the Dibfile did not list, so that their
// host tools and checksums are planned. An iso of a baremetal image (not a
// ramdisk) is NAME-boot.iso, as DIB's iso element names it.
func elementOutputs(img *spec.Image, res *element.Result, outs []plan.Output) []plan.Output {
	for _, f := range format.All() {
		if f.Source != format.Element || !hasElement(res, f.Element) {
			continue
		}
		i := slices.IndexFunc(outs, func(o plan.Output) bool { return o.Format == f.Name })
		if i < 0 {
			outs = append(outs, plan.Output{Format: f.Name, Path: img.Name + "." + f.Ext, Checksums: img.Checksum})
			i = len(outs) - 1
		}
		if f.Name == "iso" && !img.Ramdisk && !hasElement(res, "ironic-python-agent") && hasElement(res, "baremetal") {
			outs[i].Path = img.Name + "-boot.iso"
		}
	}
	return outs
}

// outputTools are the programs writing an output (the format table's).
func outputTools(o plan.Output) []string {
	f, _ := format.Lookup(o.Format)
	return f.HostTools(len(o.QemuImgOptions) > 0)
}

// envBlockDevice returns the Dibfile's DIB_BLOCK_DEVICE_CONFIG entry, which
// DIB takes over every element's block-device config (disk-image-create
// reads it before any environment.d file runs, so only the Dibfile's env
// counts); nil when there is none.
func envBlockDevice(img *spec.Image) *spec.EnvVar {
	for i, e := range img.Env {
		if e.Name == "DIB_BLOCK_DEVICE_CONFIG" && e.Value != "" && !e.Secret {
			return &img.Env[i]
		}
	}
	return nil
}

// envBlockDeviceContent is the config DIB_BLOCK_DEVICE_CONFIG names: the
// YAML itself, or file://PATH (a relative PATH is relative to the
// Dibfile's directory; DIB's is relative to where it runs).
func envBlockDeviceContent(f *spec.File, v string) ([]byte, error) {
	path, ok := strings.CutPrefix(v, "file://")
	if !ok {
		return []byte(v), nil
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(f.Path), path)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() > 1<<20 {
		return nil, fmt.Errorf("%s is not a block-device config file (a regular file of at most 1 MiB)", path)
	}
	return os.ReadFile(path)
}
