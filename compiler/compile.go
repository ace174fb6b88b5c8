// Package compiler turns a loaded Dibfile into build plans: it resolves the
// elements as DIB does (compiler/element), resolves package-installs and
// pkg-map for the target (compiler/pkgs), computes the disk layout
// (compiler/blockdev) and assembles the content-addressed step graph
// (compiler/plan) that the runtime executes.
//
// Compile is deterministic: the same Dibfile and element trees give a
// byte-identical plan, whatever the map order, GOMAXPROCS or environment
// variable order. Nothing here runs a command or touches a disk.
package compiler

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/dominikbraun/graph"

	"github.com/dibuild/dib/compiler/element"
	"github.com/dibuild/dib/compiler/pkgs"
	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/spec"
	"github.com/dibuild/dib/spec/diag"
)

// PreviewSize is the image size the plan shows the layout at when the real
// size is computed at build time from the tree (DIB's du rule).
const PreviewSize = 4 << 30

// Options are the compiler's inputs besides the Dibfile.
type Options struct {
	// Builtin are dib's own elements, searched after every elements-path
	// entry, as DIB appends its bundled element tree to ELEMENTS_PATH.
	Builtin fs.FS
	// ExtraElementsPath are directories searched before the Dibfile's
	// elements-path (e.g. from the ELEMENTS_PATH variable or a flag).
	ExtraElementsPath []string
	// DibVersion is recorded in the plan.
	DibVersion string
}

// Compile compiles every image of a Dibfile. Identical steps of different
// images get identical IDs.
func Compile(f *spec.File, opt Options) ([]*plan.Plan, diag.Diagnostics) {
	var plans []*plan.Plan
	var ds diag.Diagnostics
	for _, img := range f.Images {
		p, d := CompileImage(f, img, opt)
		ds = append(ds, d...)
		if p != nil {
			plans = append(plans, p)
		}
	}
	ds.Sort()
	if ds.HasErrors() {
		return nil, ds
	}
	return plans, ds
}

// locate returns a diagnostic positioned at the Dibfile value of a key.
func locate(f *spec.File, img *spec.Image, key string, d diag.Diagnostic) diag.Diagnostic {
	ptr := img.KeyPointer(key)
	if ptr == "" {
		ptr = img.Pointer
	}
	line, col := f.Locate(ptr)
	d.File, d.Line, d.Col, d.Path = f.Path, line, col, ptr
	return d
}

// searchPath builds DIB's ELEMENTS_PATH: extra entries, the Dibfile's
// elements-path (relative to the Dibfile's directory), then the built-ins.
func searchPath(f *spec.File, img *spec.Image, opt Options) []element.Source {
	var path []element.Source
	for _, dir := range opt.ExtraElementsPath {
		path = append(path, element.Source{Name: dir, FS: os.DirFS(dir)})
	}
	base := filepath.Dir(f.Path)
	for _, dir := range img.ElementsPath {
		full := dir
		if !filepath.IsAbs(dir) {
			full = filepath.Join(base, dir)
		}
		path = append(path, element.Source{Name: full, FS: os.DirFS(full)})
	}
	if opt.Builtin != nil {
		path = append(path, element.Source{Name: element.BuiltinName, FS: opt.Builtin})
	}
	return path
}

// CompileImage compiles one image.
func CompileImage(f *spec.File, img *spec.Image, opt Options) (*plan.Plan, diag.Diagnostics) {
	var ds diag.Diagnostics

	// Elements, as DIB resolves them.
	installTypes := map[string]string{}
	for _, o := range img.InstallTypes.Overrides {
		installTypes[o.Prefix] = o.Type
	}
	res, eds := element.Resolve(element.Options{
		Path:               searchPath(f, img, opt),
		Elements:           img.ElementNames(),
		Arch:               img.Arch,
		SkipBase:           img.SkipBase,
		Ramdisk:            img.Ramdisk,
		RamdiskElement:     img.RamdiskElement,
		DefaultInstallType: img.InstallTypes.Default,
		InstallTypes:       installTypes,
	})
	for _, d := range eds {
		if d.File == "" {
			d = locate(f, img, "elements", d)
		}
		ds = append(ds, d)
	}
	if eds.HasErrors() {
		return nil, ds
	}

	// The operating system.
	osElement := img.Distro.Element
	if by := res.ProvidedBy["operating-system"]; len(by) > 0 && osElement == "" {
		osElement = by[0]
	}
	d, known := lookupDistro(osElement)
	release := firstNonEmpty(img.Distro.Release, d.release)
	mirror := firstNonEmpty(img.Distro.Mirror, d.mirror)
	envb := buildEnv(f, img, d, release, mirror, img.Arch)
	if envb.vars["DISTRO_NAME"].Origin.Element == "" && osElement != "" {
		v := envb.vars["DISTRO_NAME"]
		v.Origin = plan.Origin{Kind: "element", Element: osElement}
		envb.vars["DISTRO_NAME"] = v
	}

	p := &plan.Plan{
		FormatVersion: plan.FormatVersion,
		DibVersion:    opt.DibVersion,
		Image: plan.Image{
			Name: img.Name, Distro: osElement, Family: d.family, Release: release, Arch: img.Arch,
			Requested: img.ElementNames(), Input: res.Input, Ramdisk: img.Ramdisk, Source: f.Path,
		},
		Blobs:   map[string][]byte{},
		Secrets: envb.secrets,
	}
	for _, e := range res.Elements {
		p.Elements = append(p.Elements, plan.Element{Name: e.Name, Source: e.Source, Provides: e.Provides, Deps: e.Deps})
	}
	for _, name := range sortedKeys(res.ProvidedBy) {
		p.Provides = append(p.Provides, plan.Provision{Name: name, By: res.ProvidedBy[name]})
	}
	for _, fl := range res.Files {
		pf := plan.File{Path: fl.Path, Mode: uint32(fl.Mode), Link: fl.LinkTarget, SHA256: fl.SHA256, Size: int64(len(fl.Content)), Element: fl.Element}
		if fl.SHA256 != "" {
			p.Blobs[fl.SHA256] = fl.Content
		}
		p.Files = append(p.Files, pf)
	}
	if it := res.InstallTypeEnv; it.Path != "" {
		p.Files = append(p.Files, plan.File{Path: it.Path, Mode: uint32(it.Mode), SHA256: it.SHA256, Size: int64(len(it.Content)), Element: it.Element})
		p.Blobs[it.SHA256] = it.Content
		sort.Slice(p.Files, func(i, j int) bool { return p.Files[i].Path < p.Files[j].Path })
	}
	fileSHA := map[string]string{}
	for _, fl := range p.Files {
		fileSHA[fl.Path] = fl.SHA256
	}
	if !known && osElement != "" {
		ds = append(ds, locate(f, img, "distro", diag.Warningf("dib has no root-filesystem provider for operating-system element %q", osElement).
			WithHint("its root.d hooks must create the tree, as under DIB")))
	}

	// Packages.
	var pels []pkgs.Element
	for _, e := range res.Elements {
		pels = append(pels, pkgs.Element{Name: e.Name, FS: e.FS})
	}
	pres, pds := pkgs.Resolve(pels, pkgs.Target{
		Distro: d.name, Family: d.family, Release: release, Arch: img.Arch, PythonVersion: "3",
		InstallType: func(el string) string {
			if t, ok := installTypes[strings.ReplaceAll(el, "-", "_")]; ok {
				return t
			}
			if t, ok := installTypes[el]; ok {
				return t
			}
			return img.InstallTypes.Default
		},
		Lookup: envb.get,
	})
	for _, d := range pds {
		ds = append(ds, locate(f, img, "elements", d))
	}
	if pds.HasErrors() {
		return nil, ds
	}

	b := &builder{plan: p, env: envb}
	envNames := envb.names()

	// Root filesystem.
	var include []string
	boot := &plan.Bootstrap{
		Provider: d.provider, Family: d.family, Suite: release, Mirror: mirror, Components: d.components,
		Variant: "minbase", Include: include, Arch: img.Arch, Available: d.available && d.provider == "mmdebstrap",
	}
	if d.keyring != "" {
		boot.Keyrings = []string{d.keyring}
	}
	if comps, ok := envb.get("DIB_DEBIAN_COMPONENTS"); ok && comps != "" {
		boot.Components = strings.Split(comps, ",")
	}
	boot.Sources = updateSources(d, release, mirror, boot.Components, envb)
	if !boot.Available {
		boot.Reason = fmt.Sprintf("the %s root-filesystem provider (%s family) is not available in dib yet; its mirrors cannot be reached from dib's build machines", boot.Provider, d.family)
		if !known {
			boot.Provider, boot.Reason = "none", "the tree starts empty: the operating-system element's root.d must create it"
			boot.Available = true
		}
	}
	var bootTools []string
	if boot.Provider == "mmdebstrap" {
		bootTools = []string{"mmdebstrap"}
	}
	last := b.add(plan.Step{Kind: plan.KindBootstrap, Title: "bootstrap root filesystem", Where: plan.Host, Tools: bootTools,
		Origin: &plan.Origin{Kind: "element", Element: osElement}, Bootstrap: boot})

	// The hook tree, with the files generated from the plan.
	hooks := &plan.Hooks{Files: len(p.Files), Generated: generatedFiles(pres, img.Packages)}
	last = b.add(plan.Step{Kind: plan.KindHooks, Title: "write hook tree", Where: plan.Host, Deps: []string{last}, Hooks: hooks})

	phasePkgs := map[string][]plan.Package{}
	for _, pk := range pres.Packages {
		phasePkgs[pk.Phase] = append(phasePkgs[pk.Phase], plan.Package{Name: pk.Name, Mapped: pk.Mapped, Element: pk.Element, Uninstall: pk.Uninstall, MapNote: pk.Note})
	}

	disk := needsDisk(img)
	phaseStep := func(ph element.Phase, deps ...string) string {
		st := &plan.Phase{Name: ph.Name, Where: ph.Where, Packages: phasePkgs[ph.Name]}
		envd := res.EnvironmentD
		if ph.Name == "root.d" {
			envd = res.EnvironmentDRoot
		}
		for _, e := range envd {
			path := "environment.d/" + e.File
			st.EnvironmentD = append(st.EnvironmentD, plan.EnvFile{Name: e.File, Element: e.Element, Path: path, SHA256: fileSHA[path]})
		}
		for _, sc := range ph.Run {
			target := sc.Target
			if target == "" {
				target = sc.Path
			}
			st.Scripts = append(st.Scripts, plan.Script{Name: sc.Name, Element: sc.Element, Path: sc.Path, SHA256: fileSHA[target]})
		}
		for _, sk := range ph.Skipped {
			st.Skipped = append(st.Skipped, plan.Skipped{Name: sk.Name, Element: strings.Join(sk.Elements, ","), Reason: sk.Reason})
		}
		tools := []string{"bash"}
		if ph.Where == plan.Chroot {
			tools = append(tools, "chroot")
		}
		return b.add(plan.Step{Kind: plan.KindPhase, Title: "phase " + ph.Name, Where: ph.Where, Deps: deps, Tools: tools, Env: envNames, Phase: st})
	}
	phases := map[string]element.Phase{}
	for _, ph := range res.Phases {
		phases[ph.Name] = ph
	}
	for _, name := range []string{"root.d", "extra-data.d", "pre-install.d", "install.d"} {
		last = phaseStep(phases[name], last)
	}
	if len(img.Packages) > 0 {
		last = b.add(plan.Step{Kind: plan.KindPackages, Title: "install packages", Where: plan.Chroot, Deps: []string{last}, Tools: []string{"chroot"},
			Env: envNames, Origin: originOf(f, img, "packages"), Packages: &plan.Packages{Names: img.Packages}})
	}
	for _, name := range []string{"post-install.d", "post-root.d"} {
		last = phaseStep(phases[name], last)
	}

	// The disk.
	var rawImage string
	if disk {
		var lay *layout.Layout
		_, last, lay, rawImage, _ = b.diskSteps(f, img, res, envb, last, &ds)
		if ds.HasErrors() {
			return nil, ds
		}
		last = phaseStep(phases["block-device.d"], last)
		if lay != nil {
			last = b.filesystemSteps(lay, last)
		}
	} else {
		last = phaseStep(phases["block-device.d"], last)
	}
	for _, name := range []string{"pre-finalise.d", "finalise.d"} {
		last = phaseStep(phases[name], last)
	}
	if disk && hasElement(res, "bootloader") {
		bl := &plan.Bootloader{BIOS: true, UEFI: b.efi, Timeout: 5}
		if v, ok := envb.get("DIB_GRUB_TIMEOUT"); ok {
			fmt.Sscan(v, &bl.Timeout)
		}
		if v, ok := envb.get("DIB_BOOTLOADER_DEFAULT_CMDLINE"); ok {
			bl.Cmdline = v
		} else {
			bl.Cmdline = "nofb nomodeset gfxpayload=text"
		}
		// DIB's bootloader element always puts a serial console on the
		// kernel command line and GRUB's terminal.
		bl.Serial = true
		bl.SerialConsole = "ttyS0,115200"
		switch img.Arch {
		case "arm64", "aarch64":
			bl.SerialConsole = "ttyAMA0,115200"
		case "powerpc", "ppc64", "ppc64el", "ppc64le":
			bl.SerialConsole = "hvc0"
		}
		if v, ok := envb.get("DIB_BOOTLOADER_SERIAL_CONSOLE"); ok {
			bl.SerialConsole = v
		}
		last = b.add(plan.Step{Kind: plan.KindBootloader, Title: "install bootloader", Where: plan.Host, Deps: []string{last},
			Tools: []string{"grub-mkimage", "mcopy", "mmd"}, Origin: &plan.Origin{Kind: "element", Element: "bootloader"}, Bootloader: bl})
	}
	last = phaseStep(phases["cleanup.d"], last)
	last = b.add(plan.Step{Kind: plan.KindManifest, Title: "write manifests", Where: plan.Host, Deps: []string{last},
		Manifest: &plan.Manifest{Dir: img.Name + ".d"}})

	// Outputs: tree formats from the tree, disk formats from the raw image;
	// raw last, because DIB moves it.
	outs := outputs(img)
	if img.Ramdisk && img.KeyPointer("outputs") == "" {
		// ramdisk-image-create makes NAME.kernel and NAME.initramfs
		// (the ramdisk element's job); a disk image only when asked.
		outs = nil
	}
	if hasElement(res, "no-final-image") {
		// DIB's no-final-image: the elements' own outputs (baremetal's
		// kernel and initrd, a ramdisk) are the result; no image file.
		var kept []plan.Output
		for _, o := range outs {
			if isDiskFormat(o.Format) {
				ds = append(ds, locate(f, img, "outputs", diag.Warningf("output %s is not written: the no-final-image element is in the build", o.Format)))
				continue
			}
			kept = append(kept, o)
		}
		outs = kept
	}
	sort.SliceStable(outs, func(i, j int) bool { return outs[i].Format != "raw" && outs[j].Format == "raw" })
	for _, o := range outs {
		o := o
		p.Outputs = append(p.Outputs, o)
		deps := []string{last}
		if rawImage != "" && isDiskFormat(o.Format) {
			deps = append(deps, rawImage)
		}
		out := b.add(plan.Step{Kind: plan.KindOutput, Title: "output " + o.Format, Where: plan.Host, Deps: deps,
			Tools: outputTools(o.Format), Origin: originOf(f, img, "outputs"), Output: &o})
		if len(o.Checksums) > 0 {
			var tools []string
			for _, c := range o.Checksums {
				tools = append(tools, c+"sum")
			}
			b.add(plan.Step{Kind: plan.KindChecksum, Title: "checksum " + o.Path, Where: plan.Host, Deps: []string{out}, Tools: tools,
				Checksum: &plan.Checksum{Path: o.Path, Algorithms: o.Checksums}})
		}
	}
	if err := b.checkDAG(); err != nil {
		ds = append(ds, diag.Errorf("internal: %v", err))
		return nil, ds
	}
	p.HostTools = hostTools(p.Steps)
	p.Env = envb.list()
	if err := p.Seal(envb.secrets); err != nil {
		ds = append(ds, diag.Errorf("internal: %v", err))
		return nil, ds
	}
	for _, d := range ds {
		if d.Severity != diag.Error {
			p.Diagnostics = append(p.Diagnostics, d)
		}
	}
	return p, ds
}

// builder accumulates steps with local keys; Seal turns them into IDs.
type builder struct {
	plan *plan.Plan
	env  *envBuilder
	efi  bool
	n    int
}

// add appends a step and returns its local key.
func (b *builder) add(s plan.Step) string {
	b.n++
	s.ID = fmt.Sprintf("step-%03d", b.n)
	if s.Tools != nil {
		s.Tools = slices.Compact(slices.Sorted(slices.Values(s.Tools)))
	}
	b.plan.Steps = append(b.plan.Steps, s)
	return s.ID
}

// checkDAG loads the steps into a graph that refuses cycles; the steps are
// built in dependency order, so this only guards that invariant.
func (b *builder) checkDAG() error {
	g := graph.New(graph.StringHash, graph.Directed(), graph.PreventCycles())
	for _, s := range b.plan.Steps {
		if err := g.AddVertex(s.ID); err != nil {
			return err
		}
		for _, d := range s.Deps {
			if err := g.AddEdge(d, s.ID); err != nil {
				return fmt.Errorf("edge %s -> %s: %w", d, s.ID, err)
			}
		}
	}
	return nil
}

func originOf(f *spec.File, img *spec.Image, key string) *plan.Origin {
	ptr := img.KeyPointer(key)
	if ptr == "" {
		return &plan.Origin{Kind: "default"}
	}
	line, col := f.Locate(ptr)
	return &plan.Origin{Kind: "dibfile", File: f.Path, Line: line, Col: col}
}

func hasElement(res *element.Result, name string) bool {
	for _, e := range res.Expanded {
		if e == name {
			return true
		}
	}
	return false
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// generatedFiles renders the package lists, pkg-map and svc-map tables the
// element helpers read in the hook tree (see the package-installs element).
func generatedFiles(res *pkgs.Result, extra []string) []plan.GeneratedFile {
	byPhase := map[string]*strings.Builder{}
	var phases []string
	for _, pk := range res.Packages {
		sb, ok := byPhase[pk.Phase]
		if !ok {
			sb = &strings.Builder{}
			byPhase[pk.Phase] = sb
			phases = append(phases, pk.Phase)
		}
		verb := "install"
		if pk.Uninstall {
			verb = "uninstall"
		}
		for _, m := range pk.Mapped {
			fmt.Fprintf(sb, "%s %s\n", verb, m)
		}
	}
	var out []plan.GeneratedFile
	sort.Slice(phases, func(i, j int) bool { return pkgs.PhaseIndex(phases[i]) < pkgs.PhaseIndex(phases[j]) })
	for _, ph := range phases {
		out = append(out, plan.GeneratedFile{Path: "dib-package-installs/" + ph, Content: byPhase[ph].String()})
	}
	if len(extra) > 0 {
		var sb strings.Builder
		for _, name := range extra {
			fmt.Fprintf(&sb, "install %s\n", name)
		}
		out = append(out, plan.GeneratedFile{Path: "dib-package-installs/packages", Content: sb.String()})
	}
	for _, el := range sortedKeys(res.Maps) {
		var sb strings.Builder
		for _, name := range sortedKeys(res.Maps[el]) {
			fmt.Fprintf(&sb, "%s\t%s\n", name, strings.Join(res.Maps[el][name], " "))
		}
		out = append(out, plan.GeneratedFile{Path: "dib-pkg-map/" + el, Content: sb.String()})
	}
	return out
}

// debianStable are the Debian releases with -updates and -security suites.
var debianStable = map[string]bool{"bullseye": true, "bookworm": true, "trixie": true, "oldstable": true, "stable": true}

// updateSources returns the apt lines of a Debian release's updates and
// security suites, bootstrapped together with the release so the tree is
// up to date from the start (base's 00-up-to-date then finds nothing to
// do). DIB_DEBIAN_SECURITY_MIRROR overrides the security mirror;
// DIB_DEBIAN_NO_UPDATES=1 bootstraps from the release alone.
func updateSources(d distro, release, mirror string, comps []string, env *envBuilder) []string {
	if d.name != "debian" || !debianStable[release] || d.provider != "mmdebstrap" {
		return nil
	}
	if v, _ := env.get("DIB_DEBIAN_NO_UPDATES"); v == "1" {
		return nil
	}
	security := "http://deb.debian.org/debian-security"
	if v, ok := env.get("DIB_DEBIAN_SECURITY_MIRROR"); ok && v != "" {
		security = v
	}
	c := strings.Join(comps, " ")
	return []string{
		"deb " + mirror + " " + release + "-updates " + c,
		"deb " + security + " " + release + "-security " + c,
	}
}
