package runtime

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/compiler/plan/dibenv"
	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/runtime/lib"
)

// dibDefaults are the variables disk-image-create and its lib/ files
// (img-defaults, common-defaults) export to every hook, with DIB's values;
// the plan's env and the runtime's facts override them.
func dibDefaults(p *plan.Plan, l envLayout) map[string]string {
	noTmpfs := "0"
	if l.NoTmpfs {
		noTmpfs = "1"
	}
	minTmpfs := strconv.Itoa(dibenv.MinTmpfsGB)
	if l.MinTmpfsGB > 0 {
		minTmpfs = fmt.Sprint(l.MinTmpfsGB)
	}
	home := l.Home
	if home == "" {
		home = "/root"
	}
	vars := map[string]string{
		// disk-image-create: "export LC_ALL=C", for consistent sorting.
		"LC_ALL": dibenv.LCAll,
		// common-defaults and img-defaults.
		"DIB_CHECKSUM":  dibenv.Checksum,
		"DIB_NO_TMPFS":  noTmpfs,
		"DIB_MIN_TMPFS": minTmpfs,
		"ELEMENTS_PATH": elementsPath(p),
		"FS_TYPE":       dibenv.FSType,
		"IMAGE_TYPE":    dibenv.ImageType,
		"DIB_LOCKFILES": home + "/.cache/dib/lockfiles",
		// mk_build_dir exports OUT_IMAGE_PATH while TMP_IMAGE_PATH is
		// still empty.
		"OUT_IMAGE_PATH": "",
		"DIB_ARGS":       dibArgs(p),
		"DIB_ENV":        dibEnv(p),
	}
	if !slices.Contains(p.Image.Input, "base") {
		vars["SKIP_BASE"] = "1" // disk-image-create -n
	}
	if p.Image.Ramdisk {
		// ramdisk-defaults (ramdisk-image-create only).
		vars["RAMDISK_ELEMENT"] = ramdiskElement(p)
	}
	// `dib-block-device getval`, which disk-image-create exports for every
	// build (a build without a disk has DIB's fallback config).
	gv := blockDeviceValues(p)
	vars["DIB_ROOT_LABEL"] = gv.RootLabel
	vars["DIB_ROOT_FSTYPE"] = gv.RootFSType
	vars["DIB_BOOT_LABEL"] = gv.BootLabel
	vars["DIB_MOUNTPOINTS"] = gv.MountPoints
	return vars
}

// blockDeviceValues are the getval values of the plan's layout, or of
// DIB's fallback config (one ext4 or FS_TYPE root filesystem mounted at /,
// labelled with the root label or its default) when the build has no disk.
func blockDeviceValues(p *plan.Plan) layout.GetVal {
	for _, s := range p.Steps {
		if s.Partition != nil && s.Partition.Layout != nil {
			return s.Partition.Layout.GetVal
		}
	}
	gv := layout.GetVal{RootFSType: "ext4", MountPoints: "/"}
	label := ""
	for _, e := range p.Env {
		switch e.Name {
		case "FS_TYPE":
			if e.Value != "" {
				gv.RootFSType = e.Value
			}
		case "DIB_ROOT_LABEL":
			label = e.Value
		}
	}
	if label == "" {
		label = "cloudimg-rootfs"
		if gv.RootFSType == "xfs" {
			label = "img-rootfs"
		}
	}
	gv.RootLabel = label
	return gv
}

// elementsPath is ELEMENTS_PATH: the elements-path directories the plan's
// elements came from, in order of first use (dib's built-in elements have
// no directory: DIB's last entry, its own elements, has no counterpart).
func elementsPath(p *plan.Plan) string {
	var dirs []string
	for _, e := range p.Elements {
		if e.Source != "" && e.Source != "builtin" && !slices.Contains(dirs, e.Source) {
			dirs = append(dirs, e.Source)
		}
	}
	return strings.Join(dirs, ":")
}

// ramdiskElement is the ramdisk element of a ramdisk build: the first
// element disk-image-create puts in front of the list.
func ramdiskElement(p *plan.Plan) string {
	for _, e := range p.Image.Input {
		if e != "base" {
			return e
		}
	}
	return "ramdisk"
}

// dibArgs is DIB_ARGS: the disk-image-create arguments that ask for the
// plan's tree (-a, -o, -n without base, the requested elements). DIB's
// also carry -t; the outputs are left out here because they are not part
// of the tree: the manifests in a tree the build cache restores for a plan
// that only adds an output are those a cold build writes.
func dibArgs(p *plan.Plan) string {
	args := []string{"-a", p.Image.Arch, "-o", p.Image.Name}
	if !slices.Contains(p.Image.Input, "base") {
		args = append(args, "-n")
	}
	return strings.Join(append(args, p.Image.Requested...), " ")
}

// dibEnv is DIB_ENV: `declare -p` of the DIB_* variables the build was
// started with (the Dibfile's, not environment.d's), one per line in name
// order, as disk-image-create records them, secrets redacted.
func dibEnv(p *plan.Plan) string {
	vals := map[string]string{}
	for _, e := range p.Env {
		if !strings.HasPrefix(e.Name, "DIB_") {
			continue
		}
		in, ok := e.Input()
		if !ok {
			continue
		}
		switch in.Origin.Kind {
		case plan.OriginEnvironmentD, "default", "dib", "element":
			continue // dib's and the elements' values, not the caller's
		}
		v := in.Value
		if in.Secret {
			v = plan.Redacted
		}
		vals[e.Name] = v
	}
	var lines []string
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		lines = append(lines, "declare -x "+k+"="+declareQuote(vals[k]))
	}
	return strings.Join(lines, "\n")
}

// declareQuote quotes v as bash's declare -p does: in double quotes, with
// \ " $ and ` escaped.
func declareQuote(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "`", "\\`")
	return `"` + r.Replace(v) + `"`
}

// hostFunctions are the shell functions disk-image-create exports to the
// hooks it runs on the host (`export -f`): die (lib/die) and _ps4, which
// the exported PS4 calls to prefix traced lines with file:function:line.
// In the chroot they are gone, as sudo drops them under DIB. (bash run as
// root ignores an inherited PS4: dib's hooks, run as root, trace with
// bash's default prefix unless they set PS4 themselves.)
func hostFunctions() (map[string]string, error) {
	die, err := lib.Function("die")
	if err != nil {
		return nil, err
	}
	return map[string]string{
		"BASH_FUNC_die%%":  die,
		"BASH_FUNC__ps4%%": `() {  local c; c=($(caller 0)); printf '%-80s ' "${c[2]}:${c[1]}:${c[0]}"` + "\n}",
		"PS4":              `+ $(_ps4):   `,
	}, nil
}

// SetEnv sets a variable for every later script, host and chroot: the
// values DIB exports as the build goes (DIB_IMAGE_SIZE once computed,
// IMAGE_BLOCK_DEVICE and IMAGE_BLOCK_DEVICES once the disk exists).
func (b *Build) SetEnv(name, value string) {
	b.HostEnv = setKV(b.HostEnv, name, value)
	b.ChrootEnv = setKV(b.ChrootEnv, name, value)
}

func setKV(env []string, name, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != name {
			out = append(out, kv)
		}
	}
	out = append(out, name+"="+value)
	sort.Strings(out)
	return out
}
