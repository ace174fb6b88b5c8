package compiler

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/spec"
)

// envBuilder collects the build environment with the origin of each value.
// A later set of the same name replaces the earlier one, so the Dibfile's
// own env (set last) wins over dib's defaults, as a caller's exported
// variable wins over DIB's defaults.
type envBuilder struct {
	vars    map[string]plan.EnvVar
	secrets map[string]string
}

func newEnvBuilder() *envBuilder {
	return &envBuilder{vars: map[string]plan.EnvVar{}, secrets: map[string]string{}}
}

func (b *envBuilder) set(name, value string, o plan.Origin) {
	b.vars[name] = plan.EnvVar{Name: name, Value: value, Origin: o}
}

func (b *envBuilder) get(name string) (string, bool) {
	v, ok := b.vars[name]
	if !ok || v.Secret {
		return "", ok
	}
	return v.Value, true
}

// list returns the variables sorted by name.
func (b *envBuilder) list() []plan.EnvVar {
	out := make([]plan.EnvVar, 0, len(b.vars))
	for _, v := range b.vars {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (b *envBuilder) names() []string {
	out := make([]string, 0, len(b.vars))
	for n := range b.vars {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// isSecretName reports whether DIB treats a variable as a password: any
// name containing PASSWORD is redacted even when not marked secret.
func isSecretName(name string) bool {
	return strings.Contains(strings.ToUpper(name), "PASSWORD")
}

// buildEnv assembles the variables every phase sees: DIB's standard ones
// with dib's defaults, the ones the Dibfile's typed keys imply, then the
// Dibfile's env entries.
func buildEnv(f *spec.File, img *spec.Image, d distro, release, mirror, arch string) *envBuilder {
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
	b.set("IMAGE_ELEMENT", strings.Join(img.ElementNames(), " "), dibfile("elements"))
	if d.name != "" {
		b.set("DISTRO_NAME", d.name, plan.Origin{Kind: "element", Element: img.Distro.Element})
	}
	if release != "" {
		o := dibfile("release")
		if img.Distro.Release == "" {
			o = plan.Origin{Kind: "default", Note: "release of " + img.Distro.Element}
		}
		b.set("DIB_RELEASE", release, o)
	}
	if mirror != "" {
		o := dibfile("mirror")
		if img.Distro.Mirror == "" {
			o = plan.Origin{Kind: "default", Note: "mirror of " + img.Distro.Element}
		}
		b.set("DIB_DISTRIBUTION_MIRROR", mirror, o)
	}
	b.set("DIB_DEBUG_TRACE", strconv.Itoa(img.DebugTrace), dibfile("debug-trace"))
	b.set("DIB_DEFAULT_INSTALLTYPE", img.InstallTypes.Default, dibfile("install-types"))
	for _, o := range img.InstallTypes.Overrides {
		b.set("DIB_INSTALLTYPE_"+o.Prefix, o.Type, dibfile("install-types"))
	}
	if img.Offline {
		b.set("DIB_OFFLINE", "1", dibfile("offline"))
	}
	b.set("DIB_PYTHON_VERSION", "3", dib)
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
	if len(img.Packages) > 0 {
		b.set("INSTALL_PACKAGES", strings.Join(img.Packages, " "), dibfile("packages"))
	}
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
	return b
}
