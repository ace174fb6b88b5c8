package blockdev

import (
	"fmt"
	"path"
	"regexp"
	"strings"
	"unicode/utf16"

	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/spec"
	"github.com/dibuild/dib/spec/diag"
)

// The checks of this file go beyond DIB's own: they reject, when the plan
// is made, configurations DIB accepts but whose build fails minutes later
// (too many GPT partitions, a label mkfs refuses, a filesystem dib cannot
// make) or that would reach outside the build's directories (node names
// and mount points become paths).

// MaxNodeName bounds node names: LVM names have at most 127 characters
// together, device-mapper names 127.
const MaxNodeName = 64

// gptMaxPartitions is the size of the partition array dib writes (and
// every tool's default): 128 entries.
const gptMaxPartitions = 128

// gptMaxName is the length of a GPT partition name, in UTF-16 code units.
const gptMaxName = 36

var (
	uuidForm     = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	volumeIDForm = regexp.MustCompile(`^[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}$`)
	gptTypeForm  = regexp.MustCompile(`^(?:(?:0x)?[0-9a-fA-F]{1,4}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$`)
)

// labelBytes are the byte lengths mkfs accepts for a label (DIB counts
// characters; a label of multi-byte characters passes DIB's check and
// fails in mkfs).
var labelBytes = map[string]int{"ext2": 16, "ext3": 16, "ext4": 16, "xfs": 12, "vfat": 11, "fat": 11, "swap": 16}

// check runs the checks on the constructed nodes and returns every
// problem found.
func (b *builder) check() diag.Diagnostics {
	var ds diag.Diagnostics
	add := func(ptr, subject, format string, args ...any) *diag.Diagnostic {
		d := diag.Errorf(format, args...).WithPath(ptr).WithSubject(subject)
		ds = append(ds, d)
		return &ds[len(ds)-1]
	}
	tables := map[*tableNode]bool{}
	for _, n := range b.nodes {
		if why := badName(n.name); why != "" {
			ptr := n.ptr
			if n.plugin != PluginLVM {
				ptr += "/name"
			}
			add(ptr, "", "node name %q %s", n.name, why).
				Hint = "a node name becomes a file and device name: one path component without control characters, at most 64 bytes"
			continue
		}
		switch {
		case n.loop != nil:
			if n.loop.size > spec.MaxImageSize {
				add(n.ptr+"/size", n.name, "local_loop %s: size %d bytes is larger than 16 TiB", n.name, n.loop.size).
					Hint = "16 TiB is the largest file ext4 can hold"
			}
		case n.part != nil:
			p := n.part
			if p.table.label == layout.LabelGPT {
				tables[p.table] = true
				if u := len(utf16.Encode([]rune(p.name))); u > gptMaxName {
					add(p.ptr+"/name", n.name, "GPT partition name %q is %d UTF-16 code units long; GPT allows %d", p.name, u, gptMaxName)
				}
				if !gptTypeForm.MatchString(p.gptType) {
					add(p.ptr+"/type", n.name, "GPT partition type %q is neither a 4-digit sgdisk code (8300, EF00) nor a GUID", p.gptType)
				}
			}
		case n.fs != nil:
			b.checkFS(n.fs, add)
		case n.mount != nil:
			mp := n.mount.mountPoint
			if why := badMountPoint(mp); why != "" {
				add(n.ptr+"/mount_point", n.name, "mount point %q %s", mp, why).
					Hint = "a mount point is an absolute, normalised path inside the image, such as /boot/efi"
			}
		case n.fstab != nil:
			o := n.fstab.options
			if o == "" || strings.ContainsAny(o, " \t") || !isPrintable(o) {
				add(n.ptr+"/options", n.name, "fstab options %q would not stay one field of /etc/fstab", o).
					Hint = "options are comma-separated words without spaces or control characters, e.g. defaults,noatime"
			}
		}
	}
	for t := range tables {
		if len(t.partitions) > gptMaxPartitions {
			add(t.ptr+"/partitions", t.name, "partitioning %s has %d partitions; a GPT holds %d", t.name, len(t.partitions), gptMaxPartitions)
		}
	}
	return ds
}

func (b *builder) checkFS(fs *fsNode, add func(ptr, subject, format string, args ...any) *diag.Diagnostic) {
	if !layout.CanMakeFS(fs.typ) {
		add(fs.ptr+"/type", fs.name, "mkfs %s: dib cannot make %q filesystems", fs.name, fs.typ).
			Hint = "dib makes " + strings.Join(layout.FSTypes(), ", ")
		return
	}
	if strings.ContainsAny(fs.label, " \t") || !isPrintable(fs.label) {
		add(fs.ptr+"/label", fs.name, "mkfs %s: label %q contains a space or a control character", fs.name, fs.label).
			Hint = "the label is written to /etc/fstab as LABEL=…, where a space or a newline ends the field"
	} else if max, ok := labelBytes[fs.typ]; ok && len(fs.label) > max {
		add(fs.ptr+"/label", fs.name, "mkfs %s: label %q is %d bytes long; %s labels have at most %d bytes", fs.name, fs.label, len(fs.label), fs.typ, max)
	}
	if fs.uuid != "" {
		ok := uuidForm.MatchString(fs.uuid)
		if fs.typ == "vfat" || fs.typ == "fat" {
			ok = ok || volumeIDForm.MatchString(fs.uuid)
		}
		if !ok {
			want := "a UUID such as 4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
			if fs.typ == "vfat" || fs.typ == "fat" {
				want += ", or a volume ID such as 1A2B-3C4D"
			}
			add(fs.ptr+"/uuid", fs.name, "mkfs %s: uuid %q is not %s", fs.name, fs.uuid, want)
		}
	}
	for _, o := range fs.opts {
		if !isPrintable(o) {
			add(fs.ptr+"/opts", fs.name, "mkfs %s: opts contain a control character", fs.name)
			break
		}
	}
}

// badName says why a node name cannot be used, or "".
func badName(name string) string {
	switch {
	case name == "":
		return "is empty"
	case len(name) > MaxNodeName:
		return fmt.Sprintf("is %d bytes long, more than %d", len(name), MaxNodeName)
	case strings.Contains(name, "/"):
		return "contains '/'"
	case name == "." || name == "..":
		return "is a directory reference"
	case strings.HasPrefix(name, "-"):
		return "starts with '-' and would be read as an option"
	case !isPrintable(name):
		return "contains a control character"
	}
	return ""
}

// badMountPoint says why a mount point cannot be used, or "".
func badMountPoint(mp string) string {
	switch {
	case mp == "none":
		return "" // swap
	case !strings.HasPrefix(mp, "/"):
		return "is not absolute"
	case !isPrintable(mp) || strings.ContainsAny(mp, " \t"):
		return "contains a space or a control character"
	case path.Clean(mp) != mp:
		return fmt.Sprintf("is not normalised (%s)", path.Clean(mp))
	}
	for _, c := range strings.Split(mp, "/") {
		if c == ".." {
			return "contains '..'"
		}
	}
	return ""
}

func isPrintable(s string) bool {
	for _, r := range s {
		if spec.IsControl(r) {
			return false
		}
	}
	return true
}
