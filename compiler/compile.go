// Package compiler turns a loaded Dibfile into build plans: it resolves the
// elements as DIB does (compiler/element), resolves package-installs and
// pkg-map for the target (compiler/pkgs), computes the disk layout
// (compiler/blockdev) and assembles the content-addressed step graph
// (compiler/plan) that the runtime executes.
//
// Compile is deterministic: the same Dibfile and element trees give a
// byte-identical plan, whatever the map order, GOMAXPROCS or environment
// variable order. Nothing here touches a disk; the one command it runs is
// bash sourcing the elements' environment.d files (compiler/envd), in a
// clean environment without network, because DIB's variables are what
// those files make of them.
package compiler

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dominikbraun/graph"

	"github.com/dibuild/dib/compiler/element"
	"github.com/dibuild/dib/compiler/pkgs"
	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/compiler/plan/format"
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
	// AllowUnknownRelease builds a release dib does not know of its
	// distribution, with a warning instead of an error.
	AllowUnknownRelease bool
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

// locateElement positions a diagnostic about a requested element at the
// key that asked for it: distro, the block-device preset, or its entry in
// elements.
func locateElement(f *spec.File, img *spec.Image, d diag.Diagnostic) diag.Diagnostic {
	switch {
	case d.Subject == "":
	case d.Subject == img.Distro.Element:
		return locate(f, img, "distro", d)
	case d.Subject == img.BlockDevice.Element():
		return locate(f, img, "block-device", d)
	default:
		if ptr := img.KeyPointer("elements"); ptr != "" {
			if i := slices.Index(img.Elements, d.Subject); i >= 0 {
				line, col := f.Locate(ptr + "/" + strconv.Itoa(i))
				d.File, d.Line, d.Col, d.Path = f.Path, line, col, ptr+"/"+strconv.Itoa(i)
				return d
			}
		}
	}
	return locate(f, img, "elements", d)
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
	for _, e := range img.Env {
		if p, ok := strings.CutPrefix(e.Name, "DIB_INSTALLTYPE_"); ok && p != "" && !e.Secret {
			installTypes[p] = e.Value
		}
	}
	defaultInstallType := img.InstallTypes.Default
	resolve := func() (*element.Result, diag.Diagnostics) {
		res, eds := element.Resolve(element.Options{
			Path:               searchPath(f, img, opt),
			Elements:           img.ElementNames(),
			Arch:               img.Arch,
			SkipBase:           img.SkipBase,
			Ramdisk:            img.Ramdisk,
			RamdiskElement:     img.RamdiskElement,
			DefaultInstallType: defaultInstallType,
			InstallTypes:       installTypes,
		})
		for i, d := range eds {
			switch {
			case d.File == "":
				eds[i] = locateElement(f, img, d)
			case strings.HasPrefix(d.Message, "operating-system: already provided") && slices.Contains(img.Elements, d.Subject):
				// A second OS element listed in elements: say so at its entry.
				where := d.Position()
				eds[i] = locateElement(f, img, diag.Diagnostic{Severity: d.Severity, Subject: d.Subject, Message: d.Message})
				eds[i].Hint = fmt.Sprintf("%s is an operating-system element (%s) and this image already has one: an image has one operating system, named by distro; remove %s from elements, or make it the distro", d.Subject, where, d.Subject)
			}
		}
		return res, eds
	}
	res, eds := resolve()
	ds = append(ds, eds...)
	if eds.HasErrors() {
		return nil, ds
	}

	// The operating system: the distro key, else the first requested
	// element dib knows as an OS element (rocky-container, not the
	// containerfile element it uses to provide operating-system), else
	// whoever provides operating-system.
	osElement := img.Distro.Element
	if osElement == "" {
		for _, e := range img.ElementNames() {
			if d, ok := distros[e]; ok && d.name != "" {
				osElement = e
				break
			}
		}
	}
	if by := res.ProvidedBy["operating-system"]; len(by) > 0 && osElement == "" {
		osElement = by[0]
	}
	d, known := lookupDistro(osElement)
	envb := buildEnv(f, img, img.Arch)
	setElementEnv(envb, res)
	if eds := sourceEnvironment(res, envb); len(eds) > 0 {
		ds = append(ds, eds...)
		if eds.HasErrors() {
			return nil, ds
		}
	}
	// DIB's install-types element reads DIB_DEFAULT_INSTALLTYPE and
	// DIB_INSTALLTYPE_<prefix> in a hook, after environment.d: what the
	// files set chooses the install scripts.
	if def, types, changed := envInstallTypes(envb, defaultInstallType, installTypes); changed {
		defaultInstallType, installTypes = def, types
		if res, eds = resolve(); eds.HasErrors() {
			return nil, append(ds, eds...)
		}
		setElementEnv(envb, res)
	}
	// DIB exports the expanded element list (element-info --env), which
	// hooks read to find out what the build has (the iso element looks for
	// a ramdisk element in it).
	envb.set("IMAGE_ELEMENT", strings.Join(res.ElementOrder, " "), plan.Origin{Kind: "dib", Note: "the expanded element list"})
	ds = append(ds, envdWarnings(f, img, envb)...)
	osOrigin := plan.Origin{Kind: "element", Element: osElement}
	envb.setDefault("DISTRO_NAME", d.name, osOrigin)
	envb.setDefault("DIB_RELEASE", d.release, plan.Origin{Kind: "default", Note: "release of " + osElement})
	defMirror := d.mirror
	if rel, _ := envb.get("DIB_RELEASE"); d.name == "centos" && rel == "8-stream" {
		// CentOS Stream 8 is archived (centos-minimal's environment.d).
		defMirror = "https://vault.centos.org"
	}
	envb.setDefault("DIB_DISTRIBUTION_MIRROR", defMirror, plan.Origin{Kind: "default", Note: "mirror of " + osElement})
	img = effectiveImage(img, envb)
	if name, ok := envb.get("DISTRO_NAME"); ok && name != "" {
		d.name = name
	}
	release, _ := envb.get("DIB_RELEASE")
	mirror, _ := envb.get("DIB_DISTRIBUTION_MIRROR")
	if rds := checkRelease(d.name, release, envb.vars["DIB_RELEASE"], opt.AllowUnknownRelease); len(rds) > 0 {
		for i := range rds {
			if rds[i].File == "" {
				rds[i] = locate(f, img, "distro", rds[i])
			}
		}
		ds = append(ds, rds...)
		if rds.HasErrors() {
			return nil, ds
		}
	}

	p := &plan.Plan{
		FormatVersion: plan.FormatVersion,
		DibVersion:    opt.DibVersion,
		Image: plan.Image{
			Name: img.Name, Distro: osElement, Family: d.family, Release: release, Arch: img.Arch,
			Requested: img.ElementNames(), Input: res.Input, Ramdisk: img.Ramdisk, Source: f.Path,
		},
		Blobs:              map[string][]byte{},
		Secrets:            envb.secrets,
		PackageDifferences: packageDifferences(res, img.Arch),
	}
	p.SourceDateEpoch = img.SourceDateEpoch
	if img.CacheMaxAge > 0 || img.CacheRegistry != "" {
		p.Cache = &plan.CacheSettings{MaxAgeSeconds: int64(img.CacheMaxAge / time.Second), Registry: img.CacheRegistry}
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
			return defaultInstallType
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
	include := bootstrapInclude(d, res, envb)
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
	if d.provider == "mmdebstrap" && hasElement(res, "debootstrap") {
		// DIB's debootstrap element: the keyring and extra options.
		for _, name := range []string{"DIB_DEBIAN_KEYRING", "DIB_APT_KEYRING"} {
			if k, ok := envb.get(name); ok && k != "" {
				boot.Keyrings = []string{k}
			}
		}
		if args, ok := envb.get("DIB_DEBOOTSTRAP_EXTRA_ARGS"); ok && args != "" {
			for _, n := range debootstrapExtraArgs(boot, args) {
				ds = append(ds, diag.Warningf("DIB_DEBOOTSTRAP_EXTRA_ARGS %s", n).WithSubject("DIB_DEBOOTSTRAP_EXTRA_ARGS"))
			}
		}
	}
	boot.Sources = updateSources(d, release, mirror, boot.Components, envb)
	if d.provider == "yum-minimal" {
		dnfBootstrap(boot, d, release, img.Arch, envb, p.Files)
	}
	if !boot.Available {
		boot.Reason = fmt.Sprintf("the %s root-filesystem provider (%s family) is not available in dib yet; its mirrors cannot be reached from dib's build machines", boot.Provider, d.family)
		if !known {
			boot.Provider, boot.Reason = "none", "the tree starts empty: the operating-system element's root.d must create it"
			boot.Available = true
		}
	}
	if desc, ok := treeFromRootD[d.provider]; ok && known {
		// The operating-system element's root.d makes the tree (DIB's way for
		// these elements): the runtime starts from an empty directory.
		*boot = plan.Bootstrap{Provider: "none", Family: d.family, Suite: release, Mirror: mirror, Arch: img.Arch, Available: true,
			Reason: fmt.Sprintf("the tree comes from %s's root.d: %s", osElement, desc)}
	}
	var bootTools []string
	switch boot.Provider {
	case "mmdebstrap":
		bootTools = []string{"mmdebstrap"}
	case "dnf":
		bootTools = []string{"dnf", "rpm", "chroot", "mount", "umount"}
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
	for i, name := range img.Packages {
		if why := spec.CheckPackageNameFor(d.family, name); why != "" {
			line, col := f.Locate(fmt.Sprintf("%s/%d", img.KeyPointer("packages"), i))
			ds = append(ds, diag.Errorf("invalid package name %q for %s: %s", name, d.name, why).At(f.Path, line, col))
		}
	}
	if ds.HasErrors() {
		return nil, ds
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
		if checkInlineBlockDevice(f, img, &ds); ds.HasErrors() {
			return nil, ds
		}
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
		// DIB's bootloader element puts a serial console on the kernel
		// command line and GRUB's terminal unless
		// DIB_BOOTLOADER_USE_SERIAL_CONSOLE says otherwise; a separate /boot
		// is named by boot=LABEL= (DIB_BOOT_LABEL); no_timer_check unless
		// DIB_NO_TIMER_CHECK is not True.
		bl.Serial = true
		if v, ok := envb.get("DIB_BOOTLOADER_USE_SERIAL_CONSOLE"); ok && v != "True" {
			bl.Serial = false
		}
		if v, ok := envb.get("DIB_NO_TIMER_CHECK"); ok && v != "True" {
			bl.TimerCheck = true
		}
		if v, ok := envb.get("DIB_BOOT_LABEL"); ok && v != "" {
			bl.Cmdline = strings.TrimSpace(bl.Cmdline + " boot=LABEL=" + v)
		}
		bl.SerialConsole = "ttyS0,115200"
		switch img.Arch {
		case "arm64", "aarch64":
			bl.SerialConsole = "ttyAMA0,115200"
		case "powerpc", "ppc64", "ppc64el", "ppc64le":
			bl.SerialConsole = "hvc0"
		}
		if v, ok := envb.get("DIB_BOOTLOADER_SERIAL_CONSOLE"); ok && v != "" {
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
	outs = elementOutputs(img, res, outs)
	if hasElement(res, "no-final-image") {
		// DIB's no-final-image: the elements' own outputs (baremetal's
		// kernel and initrd, a ramdisk) are the result; no image file.
		var kept []plan.Output
		for _, o := range outs {
			if format.IsDisk(o.Format) {
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
		o.SourceDateEpoch = img.SourceDateEpoch
		p.Outputs = append(p.Outputs, o)
		deps := []string{last}
		if rawImage != "" && format.IsDisk(o.Format) {
			deps = append(deps, rawImage)
		}
		out := b.add(plan.Step{Kind: plan.KindOutput, Title: "output " + o.Format, Where: plan.Host, Deps: deps,
			Tools: outputTools(o), Origin: originOf(f, img, "outputs"), Output: &o})
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
	markCachePoints(p)
	p.HostTools = hostTools(p.Steps)
	p.Env = envb.list()
	if err := p.Seal(); err != nil {
		ds = append(ds, diag.Errorf("internal: %v", err))
		return nil, ds
	}
	ds = append(ds, compatWarnings(p)...)
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

// markCachePoints chooses the plan's snapshot points and marks the steps
// that talk to a package mirror (see plan.Step.Snapshot, SnapshotAfter
// and Mirror).
//
// The bootstrap is kept whole; every later point keeps only what changed
// since the one before (runtime/cache/layer.go), so a point costs a scan
// of the tree (about 0.1 s for the Debian VM example's 21k entries) plus
// what its step changed. The points are therefore every step that changes
// the tree before the disk is assembled — the bootstrap, each phase that
// runs scripts, the Dibfile's packages, the manifests — and, inside a
// phase, the script that installs the phase's packages when scripts run
// after it: editing one of those scripts restores the state with the
// packages installed (install.d's package-installs is most of the phase's
// time) and runs the phase from the next script.
//
// The steps after the disk is assembled work on the image file, not the
// tree, and are never snapshot points.
func markCachePoints(p *plan.Plan) {
	for i := range p.Steps {
		s := &p.Steps[i]
		switch s.Kind {
		case plan.KindBootstrap:
			s.Mirror = s.Bootstrap != nil && s.Bootstrap.Provider != "none"
		case plan.KindPackages:
			s.Mirror = true
		case plan.KindPhase:
			s.Mirror = s.Phase != nil && (s.Phase.Where == plan.Chroot && len(s.Phase.Packages) > 0 || downloads(p, s.Phase))
		}
	}
	for i := range p.Steps {
		s := &p.Steps[i]
		if s.Kind == plan.KindImageSize || s.Kind == plan.KindPartition || s.Kind == plan.KindOutput || s.Kind == plan.KindChecksum {
			break
		}
		switch s.Kind {
		case plan.KindBootstrap, plan.KindManifest:
			s.Snapshot = true
		case plan.KindPackages:
			s.Snapshot = s.Packages != nil && len(s.Packages.Names) > 0
		case plan.KindPhase:
			s.Snapshot = s.Phase != nil && len(s.Phase.Scripts) > 0
			if s.Snapshot {
				s.SnapshotAfter = packageScript(s.Phase)
			}
		}
	}
}

// downloads reports whether a phase runs a script that fetches from the
// network outside the package manager: source-repositories' checkouts,
// cache-url, curl, wget or git clone. Its result depends on what the
// server had, so it expires like a mirror step's (cache.max-age).
func downloads(p *plan.Plan, ph *plan.Phase) bool {
	for _, sc := range ph.Scripts {
		if sc.Element == "source-repositories" {
			return true
		}
		b, _ := p.Blob(sc.SHA256)
		for _, w := range []string{"cache-url", "curl ", "wget ", "git clone"} {
			if bytes.Contains(b, []byte(w)) {
				return true
			}
		}
	}
	return false
}

// packageScript names the script of a phase that installs its packages
// (package-installs), when the phase has packages to install and scripts
// run after it.
func packageScript(ph *plan.Phase) []string {
	install := false
	for _, pk := range ph.Packages {
		if !pk.Uninstall && len(pk.Mapped) > 0 {
			install = true
		}
	}
	if !install {
		return nil
	}
	for i, sc := range ph.Scripts {
		if sc.Element == "package-installs" && strings.HasSuffix(sc.Name, "-package-installs") && i < len(ph.Scripts)-1 {
			return []string{sc.Name}
		}
	}
	return nil
}

// bootstrapInclude is what DIB's debootstrap element (root.d/08-debootstrap)
// adds to the minbase bootstrap: with mmdebstrap on the host, as on every
// machine dib runs on, --include=apt,tzdata. DIB falls back to debootstrap,
// which installs no tzdata, when a keyring, DIB_DEBOOTSTRAP_EXTRA_ARGS or
// a debootstrap script is given.
func bootstrapInclude(d distro, res *element.Result, envb *envBuilder) []string {
	if d.provider != "mmdebstrap" || !hasElement(res, "debootstrap") {
		return nil
	}
	for _, v := range []string{"DIB_APT_KEYRING", "DIB_DEBIAN_KEYRING", "DIB_DEBOOTSTRAP_EXTRA_ARGS", "DIB_DEBIAN_DEBOOTSTRAP_SCRIPT"} {
		if val, ok := envb.get(v); ok && val != "" {
			return nil
		}
	}
	return []string{"apt", "tzdata"}
}
