// Package pkgs resolves DIB's package-installs and pkg-map for a target
// distribution at compile time, so the plan shows the final package names per
// phase and where each came from.
//
// package-installs.yaml (or .json) maps a package name to nothing, to one
// map of options, or to a list of such maps (the package is kept when any of
// them applies). Options, as DIB's package-installs-squash reads them:
//
//	phase:              the phase whose package-installs step installs it (default install.d)
//	uninstall:          remove instead of install
//	arch / not-arch:    comma-separated ARCH values it applies to / does not apply to
//	dib_python_version: applies only when DIB_PYTHON_VERSION equals it
//	installtype:        applies only when the element's install type equals it
//	build-only:         installed in its phase and removed again in post-install.d
//	when:               one condition or a list, "VAR = value" / "VAR != value", all must hold
//
// pkg-map (JSON) maps a name through, in order of precedence,
// release[DISTRO_NAME][DIB_RELEASE], distro[DISTRO_NAME], family[FAMILY],
// then default. A name the element's map does not list, or an element without
// a map, keeps its own name. A mapped value is split on whitespace; an empty
// value drops the package for that distribution.
package pkgs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"

	"github.com/dibuild/dib/spec"
	"github.com/dibuild/dib/spec/diag"
	"github.com/dibuild/dib/spec/limits"
)

// DefaultPhase is where a package is installed when its entry names none.
const DefaultPhase = "install.d"

// Element is what the resolver reads of one element: its name and files.
type Element struct {
	Name string
	FS   fs.FS // the element's directory
}

// Target is the distribution the packages are resolved for, and the
// environment `when` conditions are evaluated in.
type Target struct {
	Distro  string // DISTRO_NAME: debian, ubuntu, centos, fedora, …
	Family  string // debian, redhat, suse, gentoo, …
	Release string // DIB_RELEASE
	Arch    string // ARCH
	// PythonVersion is DIB_PYTHON_VERSION ("3" by default).
	PythonVersion string
	// InstallType returns the install type of an element (source/package).
	InstallType func(element string) string
	// Lookup returns a variable of the build environment.
	Lookup func(name string) (string, bool)
}

// Package is one resolved request.
type Package struct {
	Phase     string
	Name      string   // as the element wrote it
	Mapped    []string // final names; empty when the map drops it
	Element   string
	Uninstall bool
	// Note says how the name was mapped, e.g. "redhat family, from element bootloader's pkg-map".
	Note string
}

// Result is the outcome for all elements.
type Result struct {
	Packages []Package                      // sorted by phase order, then element, then name
	Maps     map[string]map[string][]string // element -> name -> mapped, for every name of every pkg-map
}

// Map is one element's parsed pkg-map.
type Map struct {
	Family  map[string]map[string]string            `json:"family"`
	Distro  map[string]map[string]string            `json:"distro"`
	Release map[string]map[string]map[string]string `json:"release"`
	Default map[string]string                       `json:"default"`
}

// Lookup maps name for the target. ok is false when the map does not know the name.
func (m *Map) Lookup(t Target, name string) (mapped []string, note string, ok bool) {
	if r, found := m.Release[t.Distro][t.Release][name]; found {
		return fields(r), fmt.Sprintf("release %s %s", t.Distro, t.Release), true
	}
	if r, found := m.Distro[t.Distro][name]; found {
		return fields(r), "distro " + t.Distro, true
	}
	if r, found := m.Family[t.Family][name]; found {
		return fields(r), t.Family + " family", true
	}
	if r, found := m.Default[name]; found {
		return fields(r), "default", true
	}
	return nil, "", false
}

// Names returns every name the map knows, sorted.
func (m *Map) Names() []string {
	set := map[string]bool{}
	for _, fam := range m.Family {
		for n := range fam {
			set[n] = true
		}
	}
	for _, d := range m.Distro {
		for n := range d {
			set[n] = true
		}
	}
	for _, d := range m.Release {
		for _, r := range d {
			for n := range r {
				set[n] = true
			}
		}
	}
	for n := range m.Default {
		set[n] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// ParseMap parses a pkg-map file. Unknown top-level keys are an error, as
// they are almost always a typo that would silently map nothing.
func ParseMap(data []byte) (*Map, error) {
	if err := checkLimits("pkg-map", data); err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	for k := range raw {
		switch k {
		case "family", "distro", "release", "default":
		default:
			return nil, fmt.Errorf("unknown key %q (want family, distro, release or default)", k)
		}
	}
	var m Map
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

type entry struct {
	Phase         string
	Uninstall     bool
	Arch          string
	NotArch       string
	PythonVersion string
	InstallType   string
	BuildOnly     bool
	When          []string
}

// Resolve reads every element's package-installs and pkg-map and returns the
// packages per phase for the target. Problems name the element and file.
func Resolve(elements []Element, t Target) (*Result, diag.Diagnostics) {
	var ds diag.Diagnostics
	res := &Result{Maps: map[string]map[string][]string{}}
	for _, el := range elements {
		var m *Map
		if data, err := limits.Default().ReadFS(el.FS, "pkg-map"); err == nil {
			pm, err := ParseMap(data)
			if err != nil {
				ds = append(ds, diag.Errorf("%v", err).WithSubject(el.Name).
					WithHint("fix %s/pkg-map: it must be a JSON object with family, distro, release and default maps", el.Name))
				continue
			}
			m = pm
			table := map[string][]string{}
			for _, n := range m.Names() {
				if mapped, _, ok := m.Lookup(t, n); ok {
					table[n] = mapped
				} else {
					table[n] = []string{n}
				}
			}
			res.Maps[el.Name] = table
		} else if !errors.Is(err, fs.ErrNotExist) {
			ds = append(ds, diag.Errorf("reading pkg-map: %v", err).WithSubject(el.Name))
		}
		entries, file, err := readInstalls(el.FS)
		if err != nil {
			ds = append(ds, diag.Errorf("%s: %v", file, err).WithSubject(el.Name))
			continue
		}
		names := slices.Sorted(maps.Keys(entries))
		for _, name := range names {
			for _, e := range entries[name] {
				ok, err := e.applies(el.Name, t)
				if err != nil {
					ds = append(ds, diag.Errorf("%s: package %q: %v", file, name, err).WithSubject(el.Name))
					continue
				}
				if !ok {
					continue
				}
				p := Package{Phase: e.Phase, Name: name, Element: el.Name, Uninstall: e.Uninstall, Mapped: []string{name}, Note: "not mapped"}
				if m != nil {
					if mapped, how, found := m.Lookup(t, name); found {
						p.Mapped, p.Note = mapped, fmt.Sprintf("%s, from element %s's pkg-map", how, el.Name)
					} else {
						p.Note = fmt.Sprintf("not in element %s's pkg-map", el.Name)
					}
				}
				bad := false
				for _, n := range p.Mapped {
					if why := unsafeName(n); why != "" {
						ds = append(ds, diag.Errorf("%s: package %q: invalid package name %q: %s", file, name, n, why).WithSubject(el.Name))
						bad = true
					}
				}
				if bad {
					break
				}
				res.Packages = append(res.Packages, p)
				if e.BuildOnly && !e.Uninstall {
					u := p
					u.Phase, u.Uninstall = "post-install.d", true
					u.Note += "; build-only"
					res.Packages = append(res.Packages, u)
				}
				break // the first applying variant wins, as in DIB
			}
		}
	}
	sort.SliceStable(res.Packages, func(i, j int) bool {
		a, b := res.Packages[i], res.Packages[j]
		if a.Phase != b.Phase {
			return PhaseIndex(a.Phase) < PhaseIndex(b.Phase)
		}
		if a.Uninstall != b.Uninstall {
			return !a.Uninstall
		}
		if a.Element != b.Element {
			return a.Element < b.Element
		}
		return a.Name < b.Name
	})
	return res, ds
}

// PhaseIndex orders DIB's phases; unknown names sort last.
func PhaseIndex(phase string) int {
	for i, p := range []string{"root.d", "extra-data.d", "pre-install.d", "install.d", "post-install.d",
		"post-root.d", "block-device.d", "pre-finalise.d", "finalise.d", "cleanup.d"} {
		if p == phase {
			return i
		}
	}
	return 100
}

func readInstalls(fsys fs.FS) (map[string][]entry, string, error) {
	for _, file := range []string{"package-installs.yaml", "package-installs.json"} {
		data, err := limits.Default().ReadFS(fsys, file)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, file, err
		}
		out, err := parseInstalls(data)
		return out, file, err
	}
	return nil, "", nil
}

// checkLimits applies dib's input limits (spec/limits) to an element's
// YAML or JSON file, as an error naming the position.
func checkLimits(file string, data []byte) error {
	ds := limits.Default().Check(file, data)
	if !ds.HasErrors() {
		ds = spec.CheckAliases(file, data)
	}
	if ds.HasErrors() {
		d := ds[0]
		return fmt.Errorf("line %d, column %d: %s (%s)", d.Line, d.Col, d.Message, d.Hint)
	}
	return nil
}

func parseInstalls(data []byte) (map[string][]entry, error) {
	if err := checkLimits("package-installs", data); err != nil {
		return nil, err
	}
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	out := map[string][]entry{}
	names := slices.Sorted(maps.Keys(raw)) // the first error is the same every time
	for _, name := range names {
		v := raw[name]
		var items []any
		switch x := v.(type) {
		case nil:
			items = []any{map[string]any{}}
		case map[string]any:
			items = []any{x}
		case []any:
			items = x
		default:
			return nil, fmt.Errorf("package %q: want nothing, a map or a list of maps, got %v", name, v)
		}
		for _, it := range items {
			m, ok := it.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("package %q: list items must be maps", name)
			}
			e, err := parseEntry(m)
			if err != nil {
				return nil, fmt.Errorf("package %q: %w", name, err)
			}
			out[name] = append(out[name], e)
		}
	}
	return out, nil
}

func parseEntry(m map[string]any) (entry, error) {
	e := entry{Phase: DefaultPhase}
	keys := slices.Sorted(maps.Keys(m))
	for _, k := range keys {
		v := m[k]
		switch k {
		case "phase":
			e.Phase = scalar(v)
		case "uninstall":
			e.Uninstall = truthy(v)
		case "build-only":
			e.BuildOnly = truthy(v)
		case "arch", "not-arch":
			list, err := archList(k, v)
			if err != nil {
				return e, err
			}
			if k == "arch" {
				e.Arch = list
			} else {
				e.NotArch = list
			}
		case "dib_python_version":
			e.PythonVersion = scalar(v)
		case "installtype":
			e.InstallType = scalar(v)
		case "when":
			switch w := v.(type) {
			case []any:
				for _, c := range w {
					e.When = append(e.When, scalar(c))
				}
			default:
				e.When = []string{scalar(v)}
			}
		default:
			return e, fmt.Errorf("unknown option %q (known: phase, uninstall, arch, not-arch, dib_python_version, installtype, build-only, when)", k)
		}
	}
	if PhaseIndex(e.Phase) == 100 {
		return e, fmt.Errorf("unknown phase %q", e.Phase)
	}
	return e, nil
}

func (e entry) applies(element string, t Target) (bool, error) {
	if e.Arch != "" && !inList(t.Arch, e.Arch) {
		return false, nil
	}
	if e.NotArch != "" && inList(t.Arch, e.NotArch) {
		return false, nil
	}
	if e.PythonVersion != "" {
		pv := t.PythonVersion
		if pv == "" {
			pv = "3"
		}
		if e.PythonVersion != pv {
			return false, nil
		}
	}
	if e.InstallType != "" && t.InstallType != nil && t.InstallType(element) != e.InstallType {
		return false, nil
	}
	for _, c := range e.When {
		ok, err := evalWhen(c, t.Lookup)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// evalWhen evaluates "VAR = value" or "VAR != value". An unset variable
// compares as the empty string, as in DIB.
func evalWhen(cond string, lookup func(string) (string, bool)) (bool, error) {
	op, neg := "=", false
	i := strings.Index(cond, "!=")
	if i >= 0 {
		op, neg = "!=", true
	} else {
		i = strings.Index(cond, "=")
	}
	if i < 0 {
		return false, fmt.Errorf("condition %q: want \"VAR = value\" or \"VAR != value\"", cond)
	}
	name := strings.TrimSpace(cond[:i])
	want := strings.TrimSpace(cond[i+len(op):])
	if name == "" {
		return false, fmt.Errorf("condition %q: no variable name", cond)
	}
	var got string
	if lookup != nil {
		got, _ = lookup(name)
	}
	return (got == want) != neg, nil
}

func inList(v, list string) bool {
	for _, a := range strings.Split(list, ",") {
		if strings.TrimSpace(a) == v {
			return true
		}
	}
	return false
}

// unsafeName says why an element's package name cannot reach a package
// manager's command line, or "". Elements name packages more freely than
// a Dibfile may (globs such as libibverbs*, gentoo's app-admin/sudo), so
// only what would change the command is refused: a leading '-' (an
// option), spaces, control and shell characters.
func unsafeName(n string) string {
	switch {
	case n == "":
		return "it is empty"
	case strings.HasPrefix(n, "-"):
		return "it starts with '-' and would be read as an option of the package manager"
	case strings.ContainsAny(n, " \t;&|`$<>'\"\\(){}!#"):
		return "it contains a space or a shell character"
	}
	for _, r := range n {
		if spec.IsControl(r) {
			return "it contains a control character"
		}
	}
	return ""
}

// archList checks an arch or not-arch value: a string of architecture
// names separated by commas (DIB splits on ","). Anything else would match
// no architecture and drop the package without a word.
func archList(key string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s must be a comma-separated list of architectures such as \"amd64, arm64\", got %s", key, describe(v))
	}
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" || strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_')
		}) >= 0 {
			return "", fmt.Errorf("%s: %q is not an architecture name (amd64, arm64, ppc64el, s390x, x86_64, …)", key, a)
		}
	}
	return s, nil
}

// describe names the YAML type of a value for a message.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case bool, int, int64, uint64, float64:
		return fmt.Sprintf("%v", x)
	}
	return fmt.Sprintf("%T", v)
}

func scalar(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	default:
		return fmt.Sprint(x)
	}
}

func truthy(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		b, _ := strconv.ParseBool(x)
		return b
	default:
		return false
	}
}

// fields splits a mapped value; an empty value gives an empty, non-nil list
// (the package is dropped), which JSON renders as [] rather than null.
func fields(s string) []string {
	f := strings.Fields(s)
	if f == nil {
		f = []string{}
	}
	return f
}
