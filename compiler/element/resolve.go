package element

import (
	"io/fs"
	"sort"
	"strings"

	"github.com/dibuild/dib/spec/diag"
	"github.com/dibuild/dib/spec/limits"
)

// Resolve expands opts.Elements on opts.Path and builds the merged hook
// tree, the phase lists, the environment.d order and the block-device
// config choice, as DIB would (see the package doc). The Result is never
// nil: on failure it holds what was known (Input, ProvidedBy, and after a
// hook-merge failure Expanded and Elements) and Failure; the diagnostics
// then hold one error naming the element, file and line. Warnings report
// what depends on DIB's random element order.
func Resolve(opts Options) (*Result, diag.Diagnostics) {
	res := &Result{
		Expanded:   []string{},
		Provided:   []string{},
		ProvidedBy: map[string][]string{},
	}
	r := &resolver{opts: opts, cache: map[string]*loaded{}, result: res}
	res.Input, r.why = inputList(opts)

	idx, shadowed, f := indexElements(opts.Path)
	if f != nil {
		res.Failure = f
		d := diag.Diagnostic{Severity: diag.Error, Message: f.Message}
		d = d.WithHint("every elements-path entry must be an existing directory holding one directory per element")
		r.diags = r.diags.Append(d)
		return res, r.done()
	}
	r.idx = idx

	order, _, ok := r.expand(res.Input)
	for p := range res.ProvidedBy {
		res.Provided = append(res.Provided, p)
	}
	sort.Strings(res.Provided)
	if !ok {
		return res, r.done()
	}
	res.ElementOrder = order
	res.CopyOrder = bashAssocOrder(order)
	res.Expanded = append(res.Expanded, order...)
	sort.Strings(res.Expanded)

	byName, ok := r.loadExpanded(shadowed)
	if !ok {
		return res, r.done()
	}
	els := make([]*loaded, len(res.CopyOrder))
	for i, name := range res.CopyOrder {
		els[i] = byName[name]
	}

	root, ok := r.mergeHooks(els)
	if !ok {
		return res, r.done()
	}
	res.Files = flatten(root)

	effective := root
	if _, ok := byName[installTypesElement]; ok {
		effective = r.applyInstallTypes(root)
	}
	res.Phases = r.phases(root, effective)

	res.EnvironmentDRoot = listEnvironment(root)
	res.EnvironmentD = withInstallTypeEnv(res.EnvironmentDRoot)
	if res.EnvironmentDRoot == nil {
		res.EnvironmentDRoot = []EnvFile{}
	}
	def := opts.DefaultInstallType
	if def == "" {
		def = "source"
	}
	res.InstallTypeEnv = installTypeEnvFile(def)

	res.OtherDirs = otherDirs(root)
	res.BlockDevice = r.blockDevice(els)
	return res, r.done()
}

// loadExpanded loads every expanded element (r.result.Expanded) and adds
// each to the result's Elements, with its dependencies, what it provides
// and the path entries it hides (shadowed); false when one cannot be read.
func (r *resolver) loadExpanded(shadowed map[string][]location) (map[string]*loaded, bool) {
	res := r.result
	byName := make(map[string]*loaded, len(res.Expanded))
	for _, name := range res.Expanded {
		el, err := r.load(name)
		if err != nil {
			res.Failure = &Failure{Kind: KindRead, Message: err.Error()}
			r.diags = r.diags.Append(diag.Diagnostic{Severity: diag.Error, Subject: name, Message: err.Error()})
			return nil, false
		}
		byName[name] = el
		e := Element{Name: name, Source: r.opts.Path[el.loc.src].Name, Dir: el.loc.dir, FS: el.fs}
		for _, d := range el.deps {
			e.Deps = append(e.Deps, d.name)
		}
		for _, p := range el.provides {
			e.Provides = append(e.Provides, p.name)
		}
		for _, s := range shadowed[name] {
			e.Hides = append(e.Hides, r.opts.Path[s.src].Name)
		}
		res.Elements = append(res.Elements, e)
	}
	return byName, true
}

// phases lists every phase of DIB's order in the merged tree root: the
// scripts as listed, and those that run (effective: the tree after
// install-types chose, for install.d).
func (r *resolver) phases(root, effective *node) []Phase {
	var phases []Phase
	for _, p := range phaseOrder {
		ph := Phase{Name: p.name, Where: p.where, Scripts: []Script{}, Run: []Script{}}
		if d := root.kids[p.name]; d != nil && d.isDir() {
			ph.Present = true
			ph.Scripts, ph.Skipped = r.listPhase(root, p.name, d)
			if effective != root && p.name == "install.d" {
				quiet := r.diags
				ph.Run, _ = r.listPhase(effective, p.name, effective.kids[p.name])
				r.diags = quiet // the same warnings were reported for Scripts
			} else {
				ph.Run = ph.Scripts
			}
		}
		if ph.Scripts == nil {
			ph.Scripts = []Script{}
		}
		if ph.Run == nil {
			ph.Run = []Script{}
		}
		phases = append(phases, ph)
	}
	return phases
}

func (r *resolver) done() diag.Diagnostics {
	r.diags.Sort()
	return r.diags
}

// otherDirs are the merged *.d directories that are neither a phase nor
// environment.d.
func otherDirs(root *node) []DotDir {
	isPhase := make(map[string]bool, len(phaseOrder)+1)
	for _, p := range phaseOrder {
		isPhase[p.name] = true
	}
	isPhase["environment.d"] = true
	out := []DotDir{}
	for name, n := range root.kids {
		if !n.isDir() || !strings.HasSuffix(name, ".d") || isPhase[name] {
			continue
		}
		dd := DotDir{Name: name, Entries: []string{}}
		for k := range n.kids {
			dd.Entries = append(dd.Entries, k)
		}
		sort.Strings(dd.Entries)
		out = append(out, dd)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// blockDevice is block_device_create_config_file without
// DIB_BLOCK_DEVICE_CONFIG: the first element in copy order with block-device-${ARCH}.yaml (ppc64el's file when
// `[[ "ppc64le ppc64el" =~ $ARCH ]]`), else that element's
// block-device-default.yaml; else DIB's built-in fallback.
func (r *resolver) blockDevice(els []*loaded) BlockDeviceConfig {
	archFile := "block-device-" + arch(r.opts) + ".yaml"
	if bashRegexMatch("ppc64le ppc64el", arch(r.opts)) {
		archFile = "block-device-ppc64el.yaml"
	}
	var found []BlockDeviceConfig
	for _, el := range els {
		for _, name := range []string{archFile, "block-device-default.yaml"} {
			if _, err := fs.Stat(el.fs, name); err != nil {
				continue
			}
			data, err := limits.Default().ReadFS(el.fs, name)
			src := r.opts.Path[el.loc.src].Name
			found = append(found, BlockDeviceConfig{
				Element: el.name, Source: src, File: name, Content: data, ReadErr: err,
				Label: src + ":" + el.loc.dir + "/" + name,
			})
			break
		}
	}
	if len(found) == 0 {
		return BlockDeviceConfig{Fallback: true, Label: FallbackBlockDevice}
	}
	if len(found) > 1 {
		names := make([]string, len(found))
		for i, f := range found {
			names[i] = f.Element + " (" + f.File + ")"
		}
		d := diag.Warningf("several elements have a block-device config: %s; DIB uses the first it finds, which varies between runs; dib uses %s's", strings.Join(names, ", "), found[0].Element)
		d = d.WithSubject(found[0].Element).WithHint("keep a single block-device-* element, or set the block-device layout explicitly")
		r.diags = r.diags.Append(d)
	}
	return found[0]
}
