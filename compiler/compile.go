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
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/dominikbraun/graph"

	"github.com/dibuild/dib/compiler/element"
	"github.com/dibuild/dib/compiler/pkgs"
	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/compiler/plan/format"
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

// generatedFiles renders the package lists, pkg-map and svc-map tables the
// element helpers read in the hook tree (see the package-installs element).
func generatedFiles(res *pkgs.Result) []plan.GeneratedFile {
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
	for _, el := range slices.Sorted(maps.Keys(res.Maps)) {
		var sb strings.Builder
		for _, name := range slices.Sorted(maps.Keys(res.Maps[el])) {
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
// The steps after the disk is assembled work on the image, not on a tree
// of the build directory, and are not points, except the last of them:
// when every output is made from the image (or written by an element),
// the final state is kept as the finished image file
// (the runtime's disk snapshot), so a plan that only adds an output runs
// only it.
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
	if final := finalDiskState(p); final >= 0 {
		p.Steps[final].Snapshot = true
	}
}

// finalDiskState returns the index of the last state step of a plan that
// assembles a disk and whose outputs all come from the image or an
// element (no tree output reads the mounted tree after it), else -1.
func finalDiskState(p *plan.Plan) int {
	disk, last := false, -1
	for i := range p.Steps {
		s := &p.Steps[i]
		switch s.Kind {
		case plan.KindPartition:
			disk = true
		case plan.KindOutput:
			if s.Output == nil {
				return -1
			}
			if f, _ := format.Lookup(s.Output.Format); f.Source == format.Tree {
				return -1
			}
			continue
		case plan.KindChecksum:
			continue
		}
		last = i
	}
	if !disk {
		return -1
	}
	return last
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
