package element

import (
	"fmt"
	"io/fs"
	"maps"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/dibuild/dib/spec/diag"
)

// inputList builds the element list as lib/common-functions:arg_to_elements
// does: the requested elements, then _arg_defaults_hack (an argument
// exactly "vm" and no "block-device-*" argument appends block-device-efi
// when `[[ "arm64 aarch64" =~ $ARCH ]]`, else block-device-mbr), then base
// prepended unless SkipBase, then the ramdisk element prepended.
// why[i] says where Input[i] came from, for diagnostics.
func inputList(o Options) (list, why []string) {
	vm, bd := false, false
	for _, e := range o.Elements {
		if e == "vm" {
			vm = true
		}
		if strings.HasPrefix(e, "block-device-") {
			bd = true
		}
	}
	if o.Ramdisk {
		re := o.RamdiskElement
		if re == "" {
			re = "ramdisk"
		}
		list = append(list, re)
		why = append(why, "the ramdisk element of a ramdisk build")
	}
	if !o.SkipBase {
		list = append(list, "base")
		why = append(why, "base, added unless base is skipped")
	}
	for _, e := range o.Elements {
		list = append(list, e)
		why = append(why, "requested")
	}
	if vm && !bd {
		e := "block-device-mbr"
		if bashRegexMatch("arm64 aarch64", arch(o)) {
			e = "block-device-efi"
		}
		list = append(list, e)
		why = append(why, "added by DIB's vm defaults rule (no block-device-* element named)")
	}
	return list, why
}

func arch(o Options) string {
	if o.Arch == "" {
		return "amd64"
	}
	return o.Arch
}

// bashRegexMatch is `[[ s =~ $re ]]` with re unquoted: an ERE search. An
// invalid expression does not match (bash returns 2, which DIB's if treats
// as false).
func bashRegexMatch(s, re string) bool {
	r, err := regexp.CompilePOSIX(re)
	if err != nil {
		return false
	}
	return r.MatchString(s)
}

// loaded is an element whose element-deps and element-provides were read.
type loaded struct {
	name       string
	loc        location
	fs         fs.FS
	deps       []nameLine
	provides   []nameLine
	depSet     *pySet // the Python sets DIB builds from the two files
	provideSet *pySet
	lines      map[string]int // element-deps line of each dep
	provLines  map[string]int // element-provides line of each provide
}

// queued is an element waiting in DIB's check queue, with why it is there.
type queued struct {
	name string
	via  string // element whose element-deps named it; "" for the input list
	line int    // line of via's element-deps, or index+1 in the input list
}

type resolver struct {
	opts   Options
	idx    map[string]location
	cache  map[string]*loaded
	why    []string
	diags  diag.Diagnostics
	result *Result
}

func (r *resolver) load(name string) (*loaded, error) {
	if l, ok := r.cache[name]; ok {
		return l, nil
	}
	loc := r.idx[name]
	sub, err := fs.Sub(r.opts.Path[loc.src].FS, loc.dir)
	if err != nil {
		return nil, err
	}
	l := &loaded{name: name, loc: loc, fs: sub}
	if l.deps, err = readSet(sub, "element-deps"); err != nil {
		return nil, err
	}
	if l.provides, err = readSet(sub, "element-provides"); err != nil {
		return nil, err
	}
	l.depSet, l.provideSet = newPySet(), newPySet()
	l.lines, l.provLines = make(map[string]int, len(l.deps)), make(map[string]int, len(l.provides))
	for _, d := range l.deps {
		l.depSet.add(d.name)
		l.lines[d.name] = d.line
	}
	for _, p := range l.provides {
		l.provideSet.add(p.name)
		l.provLines[p.name] = p.line
	}
	r.cache[name] = l
	return l, nil
}

// where names a file of an element for users: a path under a directory
// Source, "builtin:element/file" for the built-in elements.
func (r *resolver) where(loc location, file string) string {
	s := r.opts.Path[loc.src]
	rel := path.Join(loc.dir, file)
	if s.Name == BuiltinName {
		return BuiltinName + ":" + rel
	}
	return path.Join(s.Name, rel)
}

// expand is DIB's _expand_element_dependencies: a FIFO queue seeded with
// the input list. Pop an element; skip it if provided; fail if unknown; fail
// if one of its provides is already provided; record its provides; queue
// its deps that are neither seen nor provided; mark its deps seen. Then fail
// if a requested element is provided, or if nothing provides
// operating-system. The result is everything seen minus the provided names.
//
// DIB's sets are Python sets; where their iteration order shows (the order
// deps are queued in, which provide is checked first, the order of the
// result) dib uses CPython's order with PYTHONHASHSEED=0 (pyset.go). Set
// membership is answered by maps and the union DIB rebuilds for every
// element is never built, so this is linear in elements + element-deps lines.
// It returns the expanded elements in DIB's order.
func (r *resolver) expand(input []string) (order []string, final *pySet, ok bool) {
	res := r.result
	final = pySetOf(input)
	provided := newPySet()
	union := final.len() // len(final | provided)
	queue := make([]queued, 0, len(input))
	for i, e := range input {
		queue = append(queue, queued{name: e, line: i + 1})
	}
	fail := func(f *Failure, d diag.Diagnostic) ([]string, *pySet, bool) {
		res.Failure = f
		if d.Message == "" {
			d.Message = f.Message
		}
		d.Severity = diag.Error
		r.diags = r.diags.Append(d)
		return nil, final, false
	}
	inUnion := func(k string) bool { return final.contains(k) || provided.contains(k) }
	for head := 0; head < len(queue); head++ {
		q := queue[head]
		if provided.contains(q.name) {
			continue
		}
		if _, known := r.idx[q.name]; !known {
			return fail(&Failure{Kind: KindMissingElement, Message: fmt.Sprintf("Element '%s' not found", q.name)}, r.missingDiag(q))
		}
		el, err := r.load(q.name)
		if err != nil {
			return fail(&Failure{Kind: KindRead, Message: err.Error()}, diag.Diagnostic{Subject: q.name})
		}
		for _, p := range el.provideSet.keys() {
			if provided.contains(p) {
				f := &Failure{Kind: KindAlreadyProvided, Message: fmt.Sprintf("%s: already provided by %s", p, pyRepr(res.ProvidedBy[p]))}
				d := diag.Diagnostic{Subject: q.name, File: r.where(el.loc, "element-provides"), Line: el.provLines[p]}
				if slices.Contains(res.ProvidedBy[p], q.name) {
					d = d.WithHint("element %s is in the element list twice; DIB processes it twice and fails on its own element-provides: list it once", q.name)
				} else {
					d = d.WithHint("only one element may provide %q; %s and %s both do: keep one of them", p, strings.Join(res.ProvidedBy[p], ", "), q.name)
				}
				return fail(f, d)
			}
			res.ProvidedBy[p] = append(res.ProvidedBy[p], q.name)
		}
		for _, p := range el.provideSet.keys() {
			if !final.contains(p) {
				union++
			}
		}
		provided.update(el.provideSet)
		for _, d := range el.depSet.difference(union, inUnion).keys() {
			queue = append(queue, queued{name: d, via: q.name, line: el.lines[d]})
		}
		for _, d := range el.depSet.keys() {
			if !inUnion(d) {
				union++
			}
		}
		final.update(el.depSet)
	}
	if conflicts := pySetOf(input).intersection(provided).keys(); len(conflicts) > 0 {
		f := &Failure{Kind: KindAlreadyProvided, Logged: []string{"The following elements are already provided by another element"}}
		for _, e := range conflicts {
			f.Logged = append(f.Logged, fmt.Sprintf("%s : already provided by %s", e, pyRepr(res.ProvidedBy[e])))
		}
		d := diag.Diagnostic{Subject: conflicts[0], Message: strings.Join(f.Logged, ": ")}
		d = d.WithHint("do not request %s: %s already provides it", strings.Join(conflicts, ", "), strings.Join(res.ProvidedBy[conflicts[0]], ", "))
		return fail(f, d)
	}
	if !provided.contains("operating-system") {
		f := &Failure{Kind: KindMissingOS, Message: "Please include an operating system element"}
		d := diag.Diagnostic{}
		if provs := r.osProviders(); len(provs) > 0 {
			d = d.WithHint("add one element that provides operating-system, e.g. %s", strings.Join(provs, ", "))
		}
		return fail(f, d)
	}
	return final.difference(provided.len(), provided.contains).keys(), final, true
}

// missingDiag explains an unknown element: which input entry or which
// element-deps line asked for it.
func (r *resolver) missingDiag(q queued) diag.Diagnostic {
	d := diag.Diagnostic{Subject: q.name}
	suggest := ""
	if near := r.nearNames(q.name); len(near) > 0 {
		suggest = "; did you mean " + strings.Join(near, " or ") + "?"
	}
	if q.via == "" {
		reason := r.why[q.line-1]
		d = d.WithHint("%q is in the element list (%s) but no directory of that name is on the element search path (%s)%s%s", q.name, reason, r.pathNames(), suggest, notShipped(q.name))
		return d
	}
	loc := r.idx[q.via]
	d.File, d.Line = r.where(loc, "element-deps"), q.line
	if strings.HasPrefix(q.name, "#") {
		return d.WithHint("element-deps has no comments: DIB reads every non-blank line of %s, line %d included, as an element name; delete the line", r.where(loc, "element-deps"), q.line)
	}
	return d.WithHint("element %s depends on %q (line %d of %s), which is not on the element search path (%s)%s%s", q.via, q.name, q.line, r.where(loc, "element-deps"), r.pathNames(), suggest, notShipped(q.name))
}

// nearNames returns up to three known elements within edit distance 2 of
// name, closest first. Only the error path pays for it.
func (r *resolver) nearNames(name string) []string {
	type cand struct {
		name string
		dist int
	}
	var cs []cand
	for k := range r.idx {
		if l := len(name) - len(k); l > 2 || l < -2 {
			continue // too far apart to be a typo; skip the quadratic part
		}
		if d := diag.Distance(name, k); d <= 2 {
			cs = append(cs, cand{k, d})
		}
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].dist != cs[j].dist {
			return cs[i].dist < cs[j].dist
		}
		return cs[i].name < cs[j].name
	})
	var out []string
	for i := 0; i < len(cs) && i < 3; i++ {
		out = append(out, cs[i].name)
	}
	return out
}

func (r *resolver) pathNames() string {
	names := make([]string, len(r.opts.Path))
	for i, s := range r.opts.Path {
		names[i] = s.Name
	}
	if len(names) == 0 {
		return "empty"
	}
	return strings.Join(names, ", ")
}

// osProviders lists (at most 8) elements on the search path that provide
// operating-system, for the MissingOSException hint. Only on that error
// path does dib read every element's element-provides.
func (r *resolver) osProviders() []string {
	names := slices.Sorted(maps.Keys(r.idx))
	var out []string
	for _, n := range names {
		l, err := r.load(n)
		if err != nil {
			continue
		}
		for _, p := range l.provides {
			if p.name == "operating-system" {
				out = append(out, n)
				break
			}
		}
		if len(out) == 8 {
			break
		}
	}
	return out
}
