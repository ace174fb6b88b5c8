package element

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/dibuild/dib/spec/diag"
)

// installTypesElement is the element whose extra-data.d hook links the
// chosen install types; without it DIB links nothing.
const installTypesElement = "install-types"

// installTypeEnvFile is what disk-image-create writes after root.d.
func installTypeEnvFile(defaultType string) File {
	data := []byte(fmt.Sprintf("export DIB_DEFAULT_INSTALLTYPE=${DIB_DEFAULT_INSTALLTYPE:-\"%s\"}\n", defaultType))
	f := File{Path: "environment.d/11-dib-install-type.bash", Mode: 0o644, Content: data, Element: InstallTypeEnvElement}
	f.SHA256 = sha256Hex(data)
	return f
}

// applyInstallTypes returns the hook tree as install.d looks after the
// install-types element's extra-data.d/99-enable-install-types has run:
// for every DIB_INSTALLTYPE_<prefix>=<type> (prefix '_' read as '-'), each
// entry of install.d/<prefix>-<type>-install/ is linked into install.d
// (ln -sf, replacing what is there); then, for every
// install.d/*-<default>-install directory whose prefix was not named, the
// same. As in DIB, only install.d has install types. The input tree is not
// changed: install.d is copied.
func (r *resolver) applyInstallTypes(root *node) *node {
	inst := root.kids["install.d"]
	if inst == nil || !inst.isDir() {
		return root
	}
	def := r.opts.DefaultInstallType
	if def == "" {
		def = "source"
	}
	over := *inst
	over.kids = make(map[string]*node, len(inst.kids))
	for k, v := range inst.kids {
		over.kids[k] = v
	}
	linkedBy := make(map[string]string) // name -> install dir that linked it
	link := func(dirName string) {
		d := inst.kids[dirName]
		names := make([]string, 0, len(d.kids))
		for k := range d.kids {
			if !strings.HasPrefix(k, ".") {
				names = append(names, k)
			}
		}
		sort.Strings(names)
		for _, k := range names {
			old := over.kids[k]
			if old != nil && old.isDir() {
				r.diags = r.diags.Append(diag.Warningf("install-types cannot link install.d/%s/%s: install.d/%s is a directory", dirName, k, k).WithSubject(d.kids[k].element))
				continue
			}
			if prev, ok := linkedBy[k]; ok {
				r.diags = r.diags.Append(diag.Warningf("install.d/%s is linked from both %s and %s; DIB keeps the one it links last (find order), dib keeps %s", k, prev, dirName, dirName).WithSubject(d.kids[k].element))
			} else if old != nil {
				r.diags = r.diags.Append(diag.Warningf("install-types replaces install.d/%s of element %s with a link to %s/%s", k, old.element, dirName, k).WithSubject(old.element))
			}
			linkedBy[k] = dirName
			over.kids[k] = &node{mode: symlinkMode, link: dirName + "/" + k, element: d.kids[k].element, src: "install-types", byInstallTypes: true}
		}
	}
	specified := make(map[string]bool)
	prefixes := make([]string, 0, len(r.opts.InstallTypes))
	types := make(map[string]string, len(r.opts.InstallTypes))
	for k, v := range r.opts.InstallTypes {
		p := strings.ReplaceAll(k, "_", "-")
		prefixes = append(prefixes, p)
		types[p] = v
	}
	sort.Strings(prefixes)
	for _, p := range prefixes {
		specified[p] = true
		dirName := p + "-" + types[p] + "-install"
		if d := inst.kids[dirName]; d == nil || !d.isDir() {
			r.diags = r.diags.Append(diag.Warningf("install type %q of %s: no element has install.d/%s, so nothing is linked", types[p], p, dirName))
			continue
		}
		link(dirName)
	}
	suffix := "-" + def + "-install"
	names := slices.Sorted(maps.Keys(inst.kids))
	for _, k := range names {
		if !inst.kids[k].isDir() || !strings.HasSuffix(k, suffix) {
			continue
		}
		if specified[strings.TrimSuffix(k, suffix)] {
			continue
		}
		link(k)
	}
	out := *root
	out.kids = make(map[string]*node, len(root.kids))
	for k, v := range root.kids {
		out.kids[k] = v
	}
	out.kids["install.d"] = &over
	return &out
}
