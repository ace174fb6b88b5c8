package element

import (
	"fmt"
	"io/fs"
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
	name     string
	loc      location
	fs       fs.FS
	deps     []nameLine
	provides []nameLine
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
// Each element is queued at most once (plus repeats in the input list), so
// this is linear in elements + element-deps lines.
func (r *resolver) expand(input []string) (final map[string]bool, ok bool) {
	res := r.result
	final = make(map[string]bool, len(input))
	provided := make(map[string]bool)
	queue := make([]queued, 0, len(input))
	for i, e := range input {
		final[e] = true
		queue = append(queue, queued{name: e, line: i + 1})
	}
	fail := func(f *Failure, d diag.Diagnostic) bool {
		res.Failure = f
		if d.Message == "" {
			d.Message = f.Message
		}
		d.Severity = diag.Error
		r.diags = r.diags.Append(d)
		return false
	}
	for head := 0; head < len(queue); head++ {
		q := queue[head]
		if provided[q.name] {
			continue
		}
		if _, known := r.idx[q.name]; !known {
			return final, fail(&Failure{Kind: KindMissingElement, Message: fmt.Sprintf("Element '%s' not found", q.name)}, r.missingDiag(q))
		}
		el, err := r.load(q.name)
		if err != nil {
			return final, fail(&Failure{Kind: KindRead, Message: err.Error()}, diag.Diagnostic{Subject: q.name})
		}
		for _, p := range el.provides {
			if provided[p.name] {
				f := &Failure{Kind: KindAlreadyProvided, Message: fmt.Sprintf("%s: already provided by %s", p.name, pyRepr(res.ProvidedBy[p.name]))}
				d := diag.Diagnostic{Subject: q.name, File: r.where(el.loc, "element-provides"), Line: p.line}
				if slices.Contains(res.ProvidedBy[p.name], q.name) {
					d = d.WithHint("element %s is in the element list twice; DIB processes it twice and fails on its own element-provides: list it once", q.name)
				} else {
					d = d.WithHint("only one element may provide %q; %s and %s both do: keep one of them", p.name, strings.Join(res.ProvidedBy[p.name], ", "), q.name)
				}
				return final, fail(f, d)
			}
			res.ProvidedBy[p.name] = append(res.ProvidedBy[p.name], q.name)
		}
		for _, p := range el.provides {
			provided[p.name] = true
		}
		for _, d := range el.deps {
			if !final[d.name] && !provided[d.name] {
				queue = append(queue, queued{name: d.name, via: q.name, line: d.line})
			}
			final[d.name] = true
		}
	}
	var conflicts []string
	seen := make(map[string]bool)
	for _, e := range input {
		if provided[e] && !seen[e] {
			seen[e] = true
			conflicts = append(conflicts, e)
		}
	}
	if len(conflicts) > 0 {
		f := &Failure{Kind: KindAlreadyProvided, Logged: []string{"The following elements are already provided by another element"}}
		for _, e := range conflicts {
			f.Logged = append(f.Logged, fmt.Sprintf("%s : already provided by %s", e, pyRepr(res.ProvidedBy[e])))
		}
		d := diag.Diagnostic{Subject: conflicts[0], Message: strings.Join(f.Logged, ": ")}
		d = d.WithHint("do not request %s: %s already provides it", strings.Join(conflicts, ", "), strings.Join(res.ProvidedBy[conflicts[0]], ", "))
		return final, fail(f, d)
	}
	if !provided["operating-system"] {
		f := &Failure{Kind: KindMissingOS, Message: "Please include an operating system element"}
		d := diag.Diagnostic{}
		if provs := r.osProviders(); len(provs) > 0 {
			d = d.WithHint("add one element that provides operating-system, e.g. %s", strings.Join(provs, ", "))
		}
		return final, fail(f, d)
	}
	return final, true
}

// missingDiag explains an unknown element: which input entry or which
// element-deps line asked for it.
func (r *resolver) missingDiag(q queued) diag.Diagnostic {
	d := diag.Diagnostic{Subject: q.name}
	if q.via == "" {
		reason := r.why[q.line-1]
		d = d.WithHint("%q is in the element list (%s) but no directory of that name is on the element search path (%s)", q.name, reason, r.pathNames())
		return d
	}
	loc := r.idx[q.via]
	d.File, d.Line = r.where(loc, "element-deps"), q.line
	if strings.HasPrefix(q.name, "#") {
		return d.WithHint("element-deps has no comments: DIB reads every non-blank line of %s, line %d included, as an element name; delete the line", r.where(loc, "element-deps"), q.line)
	}
	return d.WithHint("element %s depends on %q (line %d of %s), which is not on the element search path (%s)", q.via, q.name, q.line, r.where(loc, "element-deps"), r.pathNames())
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
	names := make([]string, 0, len(r.idx))
	for n := range r.idx {
		names = append(names, n)
	}
	sort.Strings(names)
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
