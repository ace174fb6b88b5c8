package compiler

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/dibuild/dib/compiler/element"
	"github.com/dibuild/dib/compiler/pkgs"
	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/compiler/plan/dibenv"
	"github.com/dibuild/dib/compiler/plan/format"
	"github.com/dibuild/dib/spec"
	"github.com/dibuild/dib/spec/diag"
)

// CompileImage compiles one image, in DIB's order: the elements, the
// environment (which may change the install types, so the elements are
// resolved again), the packages, then the steps. Each stage reports into
// the compilation's diagnostics and says whether to go on: an error stops
// the compile, as it stops DIB.
func CompileImage(f *spec.File, img *spec.Image, opt Options) (*plan.Plan, diag.Diagnostics) {
	c := &compilation{f: f, img: img, opt: opt, types: imageInstallTypes(img)}
	if !c.elements() || !c.environment() {
		return nil, c.ds
	}
	p := c.newPlan()
	pres, ok := c.packages()
	if !ok {
		return nil, c.ds
	}
	b := &builder{plan: p, env: c.envb}
	if !c.steps(b, pres) {
		return nil, c.ds
	}
	return c.seal(b)
}

// compilation is the state of one CompileImage between its stages.
type compilation struct {
	f     *spec.File
	img   *spec.Image // after environment: the image as the environment makes it
	opt   Options
	types installTypes
	ds    diag.Diagnostics

	res       *element.Result
	osElement string
	distro    distro
	known     bool // dib knows osElement
	envb      *envBuilder
	release   string
	mirror    string
	fileSHA   map[string]string // hook-tree path -> content hash
}

// installTypes are DIB's install types: the default and the ones per
// element-name prefix (DIB_INSTALLTYPE_<prefix>).
type installTypes struct {
	def      string
	byPrefix map[string]string
}

// imageInstallTypes are the Dibfile's install types.
func imageInstallTypes(img *spec.Image) installTypes {
	t := installTypes{def: img.InstallTypes.Default, byPrefix: map[string]string{}}
	for _, o := range img.InstallTypes.Overrides {
		t.byPrefix[o.Prefix] = o.Type
	}
	for _, e := range img.Env {
		if p, ok := strings.CutPrefix(e.Name, "DIB_INSTALLTYPE_"); ok && p != "" && !e.Secret {
			t.byPrefix[p] = e.Value
		}
	}
	return t
}

// of is the install type of element el.
func (t installTypes) of(el string) string {
	if v, ok := t.byPrefix[strings.ReplaceAll(el, "-", "_")]; ok {
		return v
	}
	if v, ok := t.byPrefix[el]; ok {
		return v
	}
	return t.def
}

// resolve resolves the elements as DIB does, with the diagnostics placed
// at the Dibfile entries that asked for them.
func (c *compilation) resolve() (*element.Result, diag.Diagnostics) {
	f, img := c.f, c.img
	res, eds := element.Resolve(element.Options{
		Path:               searchPath(f, img, c.opt),
		Elements:           img.ElementNames(),
		Arch:               img.Arch,
		SkipBase:           img.SkipBase,
		Ramdisk:            img.Ramdisk,
		RamdiskElement:     img.RamdiskElement,
		DefaultInstallType: c.types.def,
		InstallTypes:       c.types.byPrefix,
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

// elements resolves the elements and finds the operating system: the
// distro key, else the first requested element dib knows as an OS element
// (rocky-container, not the containerfile element it uses to provide
// operating-system), else whoever provides operating-system.
func (c *compilation) elements() bool {
	res, eds := c.resolve()
	c.ds = append(c.ds, eds...)
	if eds.HasErrors() {
		return false
	}
	c.res = res
	c.osElement = c.img.Distro.Element
	if c.osElement == "" {
		for _, e := range c.img.ElementNames() {
			if d, ok := distros[e]; ok && d.name != "" {
				c.osElement = e
				break
			}
		}
	}
	if by := res.ProvidedBy["operating-system"]; len(by) > 0 && c.osElement == "" {
		c.osElement = by[0]
	}
	c.distro, c.known = lookupDistro(c.osElement)
	return true
}

// environment builds the environment as DIB does (the Dibfile's, the
// elements' environment.d files, the OS defaults) and what it decides: the
// install types, the image, the release and the mirror.
func (c *compilation) environment() bool {
	f := c.f
	envb := buildEnv(f, c.img, c.img.Arch)
	c.envb = envb
	setElementEnv(envb, c.res)
	if eds := sourceEnvironment(c.res, envb); len(eds) > 0 {
		c.ds = append(c.ds, eds...)
		if eds.HasErrors() {
			return false
		}
	}
	// DIB's install-types element reads DIB_DEFAULT_INSTALLTYPE and
	// DIB_INSTALLTYPE_<prefix> in a hook, after environment.d: what the
	// files set chooses the install scripts.
	if def, types, changed := envInstallTypes(envb, c.types.def, c.types.byPrefix); changed {
		c.types = installTypes{def: def, byPrefix: types}
		res, eds := c.resolve()
		if eds.HasErrors() {
			c.ds = append(c.ds, eds...)
			return false
		}
		c.res = res
		setElementEnv(envb, res)
	}
	// DIB exports the expanded element list (element-info --env), which
	// hooks read to find out what the build has (the iso element looks for
	// a ramdisk element in it).
	envb.set("IMAGE_ELEMENT", strings.Join(c.res.ElementOrder, " "), plan.Origin{Kind: "dib", Note: "the expanded element list"})
	c.ds = append(c.ds, envdWarnings(f, c.img, envb)...)
	d := &c.distro
	osOrigin := plan.Origin{Kind: "element", Element: c.osElement}
	envb.setDefault("DISTRO_NAME", d.name, osOrigin)
	envb.setDefault("DIB_RELEASE", d.release, plan.Origin{Kind: "default", Note: "release of " + c.osElement})
	defMirror := d.mirror
	if rel, _ := envb.get("DIB_RELEASE"); d.name == "centos" && rel == "8-stream" {
		// CentOS Stream 8 is archived (centos-minimal's environment.d).
		defMirror = "https://vault.centos.org"
	}
	envb.setDefault("DIB_DISTRIBUTION_MIRROR", defMirror, plan.Origin{Kind: "default", Note: "mirror of " + c.osElement})
	c.img = effectiveImage(c.img, envb)
	if name, ok := envb.get("DISTRO_NAME"); ok && name != "" {
		d.name = name
	}
	c.release, _ = envb.get("DIB_RELEASE")
	c.mirror, _ = envb.get("DIB_DISTRIBUTION_MIRROR")
	if rds := checkRelease(d.name, c.release, envb.vars["DIB_RELEASE"], c.opt.AllowUnknownRelease); len(rds) > 0 {
		for i := range rds {
			if rds[i].File == "" {
				rds[i] = locate(f, c.img, "distro", rds[i])
			}
		}
		c.ds = append(c.ds, rds...)
		if rds.HasErrors() {
			return false
		}
	}
	return true
}

// newPlan is the plan without steps: the image, its elements and the hook
// tree's files.
func (c *compilation) newPlan() *plan.Plan {
	img, res := c.img, c.res
	p := &plan.Plan{
		FormatVersion: plan.FormatVersion,
		DibVersion:    c.opt.DibVersion,
		Image: plan.Image{
			Name: img.Name, Distro: c.osElement, Family: c.distro.family, Release: c.release, Arch: img.Arch,
			Requested: img.ElementNames(), Input: res.Input, Ramdisk: img.Ramdisk, Source: c.f.Path,
		},
		Blobs:              map[string][]byte{},
		Secrets:            c.envb.secrets,
		PackageDifferences: packageDifferences(res, img.Arch),
	}
	p.Epoch = epoch(img)
	if img.CacheMaxAge > 0 || img.CacheRegistry != "" {
		p.Cache = &plan.CacheSettings{MaxAgeSeconds: int64(img.CacheMaxAge / time.Second), Registry: img.CacheRegistry}
	}
	for _, e := range res.Elements {
		p.Elements = append(p.Elements, plan.Element{Name: e.Name, Source: e.Source, Provides: e.Provides, Deps: e.Deps})
	}
	for _, name := range slices.Sorted(maps.Keys(res.ProvidedBy)) {
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
	c.fileSHA = map[string]string{}
	for _, fl := range p.Files {
		c.fileSHA[fl.Path] = fl.SHA256
	}
	if !c.known && c.osElement != "" {
		c.ds = append(c.ds, locate(c.f, img, "distro", diag.Warningf("dib has no root-filesystem provider for operating-system element %q", c.osElement).
			WithHint("its root.d hooks must create the tree, as under DIB")))
	}
	return p
}

// packages resolves package-installs and pkg-map for the target.
func (c *compilation) packages() (*pkgs.Result, bool) {
	var pels []pkgs.Element
	for _, e := range c.res.Elements {
		pels = append(pels, pkgs.Element{Name: e.Name, FS: e.FS})
	}
	pres, pds := pkgs.Resolve(pels, pkgs.Target{
		Distro: c.distro.name, Family: c.distro.family, Release: c.release, Arch: c.img.Arch, PythonVersion: "3",
		InstallType: c.types.of,
		Lookup:      c.envb.get,
	})
	for _, d := range pds {
		c.ds = append(c.ds, locate(c.f, c.img, "elements", d))
	}
	return pres, !pds.HasErrors()
}

// bootstrap is the root-filesystem step's bootstrap and the tools it runs.
func (c *compilation) bootstrap(files []plan.File) (*plan.Bootstrap, []string) {
	d, res, envb, release, mirror := c.distro, c.res, c.envb, c.release, c.mirror
	boot := &plan.Bootstrap{
		Provider: d.provider, Family: d.family, Suite: release, Mirror: mirror, Components: d.components,
		Variant: "minbase", Include: bootstrapInclude(d, res, envb), Arch: c.img.Arch, Available: d.available && d.provider == "mmdebstrap",
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
				c.ds = append(c.ds, diag.Warningf("DIB_DEBOOTSTRAP_EXTRA_ARGS %s", n).WithSubject("DIB_DEBOOTSTRAP_EXTRA_ARGS"))
			}
		}
	}
	boot.Sources = updateSources(d, release, mirror, boot.Components, envb)
	if d.provider == "yum-minimal" {
		dnfBootstrap(boot, d, release, c.img.Arch, envb, files)
	}
	if !boot.Available {
		boot.Reason = fmt.Sprintf("the %s root-filesystem provider (%s family) is not available in dib yet; its mirrors cannot be reached from dib's build machines", boot.Provider, d.family)
		if !c.known {
			boot.Provider, boot.Reason = "none", "the tree starts empty: the operating-system element's root.d must create it"
			boot.Available = true
		}
	}
	if desc, ok := treeFromRootD[d.provider]; ok && c.known {
		// The operating-system element's root.d makes the tree (DIB's way for
		// these elements): the runtime starts from an empty directory.
		*boot = plan.Bootstrap{Provider: "none", Family: d.family, Suite: release, Mirror: mirror, Arch: c.img.Arch, Available: true,
			Reason: fmt.Sprintf("the tree comes from %s's root.d: %s", c.osElement, desc)}
	}
	switch boot.Provider {
	case "mmdebstrap":
		return boot, []string{"mmdebstrap"}
	case "dnf":
		return boot, []string{"dnf", "rpm", "chroot", "mount", "umount"}
	}
	return boot, nil
}

// phaseStepper adds the step of one phase after deps and returns its key.
type phaseStepper func(ph element.Phase, deps ...string) string

// phaseSteps returns the phase step maker and the phases by name.
func (c *compilation) phaseSteps(b *builder, pres *pkgs.Result, envNames []string) (phaseStepper, map[string]element.Phase) {
	phasePkgs := map[string][]plan.Package{}
	for _, pk := range pres.Packages {
		phasePkgs[pk.Phase] = append(phasePkgs[pk.Phase], plan.Package{Name: pk.Name, Mapped: pk.Mapped, Element: pk.Element, Uninstall: pk.Uninstall, MapNote: pk.Note})
	}
	step := func(ph element.Phase, deps ...string) string {
		st := &plan.Phase{Name: ph.Name, Where: ph.Where, Packages: phasePkgs[ph.Name]}
		envd := c.res.EnvironmentD
		if ph.Name == "root.d" {
			envd = c.res.EnvironmentDRoot
		}
		for _, e := range envd {
			path := "environment.d/" + e.File
			st.EnvironmentD = append(st.EnvironmentD, plan.EnvFile{Name: e.File, Element: e.Element, Path: path, SHA256: c.fileSHA[path]})
		}
		for _, sc := range ph.Run {
			target := sc.Target
			if target == "" {
				target = sc.Path
			}
			st.Scripts = append(st.Scripts, plan.Script{Name: sc.Name, Element: sc.Element, Path: sc.Path, SHA256: c.fileSHA[target]})
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
	for _, ph := range c.res.Phases {
		phases[ph.Name] = ph
	}
	return step, phases
}

// steps adds the build's steps in DIB's order: bootstrap, hook tree, the
// phases with the packages and the disk between them, the boot loader,
// the manifests, the outputs.
func (c *compilation) steps(b *builder, pres *pkgs.Result) bool {
	f, img, res, p := c.f, c.img, c.res, b.plan
	envNames := c.envb.names()
	boot, bootTools := c.bootstrap(p.Files)
	last := b.add(plan.Step{Kind: plan.KindBootstrap, Title: "bootstrap root filesystem", Where: plan.Host, Tools: bootTools,
		Origin: &plan.Origin{Kind: "element", Element: c.osElement}, Bootstrap: boot})

	// The hook tree, with the files generated from the plan.
	hooks := &plan.Hooks{Files: len(p.Files), Generated: generatedFiles(pres)}
	last = b.add(plan.Step{Kind: plan.KindHooks, Title: "write hook tree", Where: plan.Host, Deps: []string{last}, Hooks: hooks})

	phaseStep, phases := c.phaseSteps(b, pres, envNames)
	for _, name := range []string{"root.d", "extra-data.d", "pre-install.d", "install.d"} {
		last = phaseStep(phases[name], last)
	}
	for i, name := range img.Packages {
		if why := spec.CheckPackageNameFor(c.distro.family, name); why != "" {
			line, col := f.Locate(fmt.Sprintf("%s/%d", img.KeyPointer("packages"), i))
			c.ds = append(c.ds, diag.Errorf("invalid package name %q for %s: %s", name, c.distro.name, why).At(f.Path, line, col))
		}
	}
	if c.ds.HasErrors() {
		return false
	}
	if len(img.Packages) > 0 {
		last = b.add(plan.Step{Kind: plan.KindPackages, Title: "install packages", Where: plan.Chroot, Deps: []string{last}, Tools: []string{"chroot"},
			Env: envNames, Origin: originOf(f, img, "packages"), Packages: &plan.Packages{Names: img.Packages}})
	}
	for _, name := range []string{"post-install.d", "post-root.d"} {
		last = phaseStep(phases[name], last)
	}

	// The disk.
	disk := needsDisk(img)
	var rawImage string
	if disk {
		last, rawImage = b.diskSteps(f, img, res, c.envb, last, &c.ds)
	} else {
		checkInlineBlockDevice(f, img, &c.ds)
	}
	if c.ds.HasErrors() {
		return false
	}
	last = phaseStep(phases["block-device.d"], last)
	for _, name := range []string{"pre-finalise.d", "finalise.d"} {
		last = phaseStep(phases[name], last)
	}
	if disk && hasElement(res, "bootloader") {
		last = b.add(plan.Step{Kind: plan.KindBootloader, Title: "install bootloader", Where: plan.Host, Deps: []string{last},
			Tools: []string{"grub-mkimage", "mcopy", "mmd"}, Origin: &plan.Origin{Kind: "element", Element: "bootloader"}, Bootloader: c.bootloader(b.efi)})
	}
	last = phaseStep(phases["cleanup.d"], last)
	last = b.add(plan.Step{Kind: plan.KindManifest, Title: "write manifests", Where: plan.Host, Deps: []string{last},
		Manifest: &plan.Manifest{Dir: img.Name + ".d"}})
	c.outputSteps(b, last, rawImage)
	return true
}

// bootloader is what DIB's bootloader element installs, from its
// variables. It puts a serial console on the kernel command line and
// GRUB's terminal unless DIB_BOOTLOADER_USE_SERIAL_CONSOLE says otherwise;
// a separate /boot is named by boot=LABEL= (DIB_BOOT_LABEL);
// no_timer_check unless DIB_NO_TIMER_CHECK is not True.
func (c *compilation) bootloader(efi bool) *plan.Bootloader {
	envb := c.envb
	bl := &plan.Bootloader{BIOS: true, UEFI: efi, Timeout: 5, Epoch: epoch(c.img)}
	if v, ok := envb.get("DIB_GRUB_TIMEOUT"); ok {
		fmt.Sscan(v, &bl.Timeout)
	}
	if v, ok := envb.get("DIB_BOOTLOADER_DEFAULT_CMDLINE"); ok {
		bl.Cmdline = v
	} else {
		bl.Cmdline = "nofb nomodeset gfxpayload=text"
	}
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
	bl.SerialConsole = dibenv.SerialConsole
	switch c.img.Arch {
	case "arm64", "aarch64":
		bl.SerialConsole = "ttyAMA0,115200"
	case "powerpc", "ppc64", "ppc64el", "ppc64le":
		bl.SerialConsole = "hvc0"
	}
	if v, ok := envb.get("DIB_BOOTLOADER_SERIAL_CONSOLE"); ok && v != "" {
		bl.SerialConsole = v
	}
	return bl
}

// epoch is the image's SOURCE_DATE_EPOCH: the Dibfile's
// source-date-epoch, or else the newest installed package's build date,
// which the runtime reads from the tree (plan.EpochFromPackages).
func epoch(img *spec.Image) plan.Epoch {
	if img.SourceDateEpoch != nil {
		return plan.Epoch{SourceDateEpoch: *img.SourceDateEpoch}
	}
	return plan.Epoch{SourceDateEpochFrom: plan.EpochFromPackages}
}

// outputSteps adds the outputs and their checksums: tree formats from the
// tree, disk formats from the raw image; raw last, because DIB moves it.
func (c *compilation) outputSteps(b *builder, last, rawImage string) {
	f, img, res, p := c.f, c.img, c.res, b.plan
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
				c.ds = append(c.ds, locate(f, img, "outputs", diag.Warningf("output %s is not written: the no-final-image element is in the build", o.Format)))
				continue
			}
			kept = append(kept, o)
		}
		outs = kept
	}
	sort.SliceStable(outs, func(i, j int) bool { return outs[i].Format != "raw" && outs[j].Format == "raw" })
	for _, o := range outs {
		o := o
		o.Epoch = epoch(img)
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
}

// seal checks the graph, marks the cache points, lists the host tools and
// the environment, and gives every step its ID; the plan keeps the
// warnings.
func (c *compilation) seal(b *builder) (*plan.Plan, diag.Diagnostics) {
	p := b.plan
	if err := b.checkDAG(); err != nil {
		c.ds = append(c.ds, diag.Errorf("internal: %v", err))
		return nil, c.ds
	}
	markCachePoints(p)
	p.HostTools = hostTools(p.Steps)
	p.Env = c.envb.list()
	if err := p.Seal(); err != nil {
		c.ds = append(c.ds, diag.Errorf("internal: %v", err))
		return nil, c.ds
	}
	c.ds = append(c.ds, compatWarnings(p)...)
	for _, d := range c.ds {
		if d.Severity != diag.Error {
			p.Diagnostics = append(p.Diagnostics, d)
		}
	}
	return p, c.ds
}
