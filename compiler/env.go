package compiler

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/dibuild/dib/compiler/element"
	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/compiler/plan/dibenv"
	"github.com/dibuild/dib/spec"
	"github.com/dibuild/dib/spec/diag"
)

// envBuilder collects the build environment with the origin of each value.
// A later set of the same name replaces the earlier one, so the Dibfile's
// own env (set last) wins over dib's defaults, as a caller's exported
// variable wins over DIB's defaults.
type envBuilder struct {
	vars    map[string]plan.EnvVar
	secrets map[string]string
	// identity are the variables the environment.d files derive from the
	// identity variables; identityKnown is false when that could not be
	// found out (see identityDerived).
	identity      map[string]bool
	identityKnown bool
}

func newEnvBuilder() *envBuilder {
	return &envBuilder{vars: map[string]plan.EnvVar{}, secrets: map[string]string{}, identityKnown: true}
}

func (b *envBuilder) set(name, value string, o plan.Origin) {
	b.vars[name] = plan.EnvVar{Name: name, Value: value, Origin: o}
}

// given returns a variable's value as the build starts, before any
// environment.d file: what disk-image-create itself reads.
func (b *envBuilder) given(name string) (string, bool) {
	v, ok := b.vars[name]
	if !ok {
		return "", false
	}
	in, ok := v.Input()
	if !ok || in.Secret {
		return "", false
	}
	return in.Value, true
}

func (b *envBuilder) get(name string) (string, bool) {
	v, ok := b.vars[name]
	if !ok || v.Secret {
		return "", ok
	}
	return v.Value, true
}

// list returns the variables sorted by name, the identity variables and
// what the environment.d files derive from them marked (unless that is
// unknown).
func (b *envBuilder) list() []plan.EnvVar {
	out := make([]plan.EnvVar, 0, len(b.vars))
	for _, v := range b.vars {
		v.Identity = b.identityKnown && !v.Secret && (slices.Contains(plan.IdentityVariables(), v.Name) || b.identity[v.Name])
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (b *envBuilder) names() []string {
	return slices.Sorted(maps.Keys(b.vars))
}

// isSecretName reports whether DIB treats a variable as a password: any
// name containing PASSWORD is redacted even when not marked secret.
func isSecretName(name string) bool {
	return strings.Contains(strings.ToUpper(name), "PASSWORD")
}

// buildEnv assembles the variables the build starts with, before any
// environment.d file: DIB's standard ones with dib's defaults, the ones the
// Dibfile's typed keys imply, then the Dibfile's env entries.
func buildEnv(f *spec.File, img *spec.Image, arch string) *envBuilder {
	b := newEnvBuilder()
	def := plan.Origin{Kind: "default"}
	dibfile := func(key string) plan.Origin {
		ptr := img.KeyPointer(key)
		if ptr == "" {
			return def
		}
		line, col := f.Locate(ptr)
		return plan.Origin{Kind: "dibfile", File: f.Path, Line: line, Col: col}
	}
	dib := plan.Origin{Kind: "dib"}

	b.set("ARCH", arch, dibfile("arch"))
	b.set("IMAGE_NAME", img.Name, dibfile("name"))
	if img.Distro.Release != "" {
		b.set("DIB_RELEASE", img.Distro.Release, dibfile("release"))
	}
	if img.Distro.Mirror != "" {
		b.set("DIB_DISTRIBUTION_MIRROR", img.Distro.Mirror, dibfile("mirror"))
	}
	b.set("DIB_DEBUG_TRACE", strconv.Itoa(img.DebugTrace), dibfile("debug-trace"))
	b.set("DIB_DEFAULT_INSTALLTYPE", img.InstallTypes.Default, dibfile("install-types"))
	for _, o := range img.InstallTypes.Overrides {
		b.set("DIB_INSTALLTYPE_"+o.Prefix, o.Type, dibfile("install-types"))
	}
	if img.Offline {
		b.set("DIB_OFFLINE", "1", dibfile("offline"))
	}
	b.set("DIB_PYTHON_VERSION", dibenv.PythonVersion, dib)
	// What disk-image-create and its lib/ defaults export to every hook
	// (LC_ALL; common-defaults, img-defaults, ramdisk-defaults).
	b.set("LC_ALL", dibenv.LCAll, dib)
	b.set("IMAGE_TYPE", dibenv.ImageType, plan.Origin{Kind: "default", Note: "img-defaults"})
	noTmpfs := "0"
	if !img.Tmpfs {
		noTmpfs = "1"
	}
	b.set("DIB_NO_TMPFS", noTmpfs, dibfile("tmpfs"))
	minTmpfs := strconv.Itoa(dibenv.MinTmpfsGB)
	if img.MinTmpfs > 0 {
		minTmpfs = strconv.FormatInt(int64(img.MinTmpfs), 10)
	}
	b.set("DIB_MIN_TMPFS", minTmpfs, dibfile("min-tmpfs"))
	setImageEnv(b, f, img, dibfile)
	setDibfileEnv(b, f, img)
	return b
}

// setImageEnv sets what disk-image-create derives from its flags: the
// elements path, the ramdisk, the filesystem and disk options, the
// outputs, the packages.
func setImageEnv(b *envBuilder, f *spec.File, img *spec.Image, dibfile func(key string) plan.Origin) {
	var elementsPath []string
	for _, dir := range img.ElementsPath {
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(filepath.Dir(f.Path), dir)
		}
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs // hooks run in other directories
		}
		elementsPath = append(elementsPath, dir)
	}
	b.set("ELEMENTS_PATH", strings.Join(elementsPath, ":"), dibfile("elements-path"))
	if img.Ramdisk {
		re := img.RamdiskElement
		if re == "" {
			re = "ramdisk"
		}
		b.set("RAMDISK_ELEMENT", re, dibfile("ramdisk-element"))
	}
	b.set("FS_TYPE", img.FSType, dibfile("fs-type"))
	if img.RootLabel != "" {
		b.set("DIB_ROOT_LABEL", img.RootLabel, dibfile("root-label"))
	}
	if img.MkfsOptions != "" {
		b.set("MKFS_OPTS", img.MkfsOptions, dibfile("mkfs-options"))
	}
	if img.MaxOnlineResize > 0 {
		b.set("MAX_ONLINE_RESIZE", strconv.FormatInt(img.MaxOnlineResize, 10), dibfile("max-online-resize"))
	}
	if img.ImageSize > 0 {
		b.set("DIB_IMAGE_SIZE", fmt.Sprintf("%g", float64(img.ImageSize)/(1<<30)), dibfile("image-size"))
	}
	if img.ImageCache != "" {
		b.set("DIB_IMAGE_CACHE", img.ImageCache, dibfile("image-cache"))
	}
	var types []string
	for _, o := range img.Outputs {
		types = append(types, o.Format)
		if o.Target != "" {
			b.set("DOCKER_TARGET", o.Target, dibfile("outputs"))
		}
	}
	b.set("IMAGE_TYPES", strings.Join(types, " "), dibfile("outputs"))
	if len(img.Checksum) > 0 {
		b.set("DIB_CHECKSUM", strings.Join(img.Checksum, ","), dibfile("checksum"))
	}
	if img.Ramdisk {
		b.set("IS_RAMDISK", "1", dibfile("ramdisk"))
	}
	// The packages are not a variable: DIB's INSTALL_PACKAGES is a bash
	// array, which bash does not export, so no hook sees the -p list; the
	// packages step gets it on its command line.
}

// setDibfileEnv sets the Dibfile's env entries; secret ones (and DIB's
// *PASSWORD* names) are redacted in the plan, their values kept apart.
func setDibfileEnv(b *envBuilder, f *spec.File, img *spec.Image) {
	for _, e := range img.Env {
		o := plan.Origin{Kind: "dibfile", File: f.Path, Line: e.Line, Col: e.Col}
		v := plan.EnvVar{Name: e.Name, Value: e.Value, Origin: o, FromEnv: e.FromEnv}
		if e.Secret || isSecretName(e.Name) {
			v.Secret, v.Value, v.Missing = true, plan.Redacted, e.Missing
			if !e.Missing {
				b.secrets[e.Name] = e.Value
			}
		}
		b.vars[e.Name] = v
	}
}

// setElementEnv sets IMAGE_ELEMENT as disk-image-create leaves it for
// environment.d and the hooks: element-info's expanded list, in DIB's
// order, replacing the requested list.
func setElementEnv(b *envBuilder, res *element.Result) {
	b.set("IMAGE_ELEMENT", strings.Join(res.ElementOrder, " "), plan.Origin{Kind: "dib", Note: "element-info: the expanded elements"})
}

// setDefault sets a variable that neither the Dibfile nor an environment.d
// file set: dib's knowledge of the operating-system element stands in for
// the element's own environment.d default.
func (b *envBuilder) setDefault(name, value string, o plan.Origin) {
	if _, ok := b.vars[name]; ok || value == "" {
		return
	}
	b.set(name, value, o)
}

// effectiveImage returns img with the decisions DIB's hooks take from the
// variables after environment.d: DIB_RELEASE and DIB_DISTRIBUTION_MIRROR.
// (What disk-image-create reads itself, the checksums and the image size,
// comes from the Dibfile alone: spec applied its env entries.)
func effectiveImage(img *spec.Image, b *envBuilder) *spec.Image {
	eff := *img
	if v, ok := b.get("DIB_RELEASE"); ok {
		eff.Distro.Release = v
	}
	if v, ok := b.get("DIB_DISTRIBUTION_MIRROR"); ok {
		eff.Distro.Mirror = v
	}
	return &eff
}

// envInstallTypes returns the install types the build's variables choose
// after environment.d (DIB_DEFAULT_INSTALLTYPE, DIB_INSTALLTYPE_<prefix>)
// and whether they differ from def and types.
func envInstallTypes(b *envBuilder, def string, types map[string]string) (string, map[string]string, bool) {
	newDef := def
	if v, ok := b.get("DIB_DEFAULT_INSTALLTYPE"); ok && v != "" {
		newDef = v
	}
	newTypes := map[string]string{}
	for _, name := range b.names() {
		if p, ok := strings.CutPrefix(name, "DIB_INSTALLTYPE_"); ok && p != "" {
			if v, ok := b.get(name); ok {
				newTypes[p] = v
			}
		}
	}
	for p, t := range types {
		if _, ok := newTypes[p]; !ok {
			newTypes[p] = t
		}
	}
	changed := newDef != def || len(newTypes) != len(types)
	for p, t := range newTypes {
		if types[p] != t {
			changed = true
		}
	}
	return newDef, newTypes, changed
}

// mainScriptVars are read by disk-image-create itself, before any
// environment.d file runs: a file that sets one changes nothing, in DIB as
// in dib.
var mainScriptVars = []string{"DIB_CHECKSUM", "DIB_IMAGE_SIZE", "DIB_IMAGE_EXTRA_SIZE", "DIB_JOURNAL_SIZE",
	"DIB_BLOCK_DEVICE_CONFIG", "FS_TYPE", "ROOT_LABEL", "MAX_ONLINE_RESIZE", "DIB_NO_TMPFS", "DIB_MIN_TMPFS", "IMAGE_TYPES"}

// envdWarnings reports what environment.d files did that a user would not
// expect: replacing a value the Dibfile gave (DIB's order: the file wins),
// and setting a variable DIB reads before the files run.
func envdWarnings(f *spec.File, img *spec.Image, b *envBuilder) diag.Diagnostics {
	var ds diag.Diagnostics
	for _, name := range b.names() {
		v := b.vars[name]
		if !v.Derived() {
			continue
		}
		if o := v.Overrides; o != nil && o.Origin.Kind == "dibfile" && !v.Secret && o.Value != "" {
			// (An empty value is unset to ${VAR:-default}: no surprise.)
			ds = append(ds, diag.Warningf("%s replaces %s=%q with %q", v.Origin.String(), name, o.Value, v.Value).
				At(o.Origin.File, o.Origin.Line, o.Origin.Col).WithSubject(name).
				WithHint("environment.d files run after the Dibfile's values, as in DIB; the build uses %q", v.Value))
		}
		if slices.Contains(mainScriptVars, name) {
			d := diag.Warningf("%s sets %s, which DIB reads before environment.d runs: it has no effect on the image, as under DIB", v.Origin.String(), name).
				WithSubject(name)
			ds = append(ds, d.WithHint("set it in the Dibfile (env: or its key) instead"))
		}
	}
	return ds
}
