package plan

import (
	"path"
	"regexp"
	"sort"
	"strings"
)

// ElementsDir is the directory under TMP_BUILD_DIR where the runtime
// writes the built-in elements' directories (from the plan's files), so
// that IMAGE_ELEMENT_YAML and get_image_element_array name a directory for
// every element, as DIB's element-info does.
const ElementsDir = "elements"

// ElementDir is one element of the build and its directory.
type ElementDir struct {
	Name string
	Dir  string
}

// ElementDirs lists the plan's elements in order (DIB's IMAGE_ELEMENT
// order; elements not in order follow, by name) with their directories:
// an elements-path element is its directory in that path entry, a
// built-in one is buildDir/elements/NAME.
func ElementDirs(p *Plan, order []string, buildDir string) []ElementDir {
	byName := map[string]Element{}
	for _, e := range p.Elements {
		byName[e.Name] = e
	}
	var out []ElementDir
	seen := map[string]bool{}
	add := func(name string) {
		e, ok := byName[name]
		if !ok || seen[name] {
			return
		}
		seen[name] = true
		dir := buildDir + "/" + ElementsDir + "/" + name
		if !e.Builtin() {
			dir = path.Join(e.Source, name)
		}
		out = append(out, ElementDir{Name: name, Dir: dir})
	}
	for _, n := range order {
		add(n)
	}
	for _, e := range p.Elements {
		add(e.Name)
	}
	return out
}

// Builtin reports whether the element is one of dib's own (it has no
// directory outside the plan).
func (e Element) Builtin() bool { return e.Source == "" || e.Source == "builtin" }

// ElementYAML is DIB's IMAGE_ELEMENT_YAML: PyYAML's safe_dump of the
// element → directory map (keys sorted, one "name: dir" line each, a
// trailing newline), which DIB exports verbatim.
func ElementYAML(dirs []ElementDir) string {
	sorted := append([]ElementDir(nil), dirs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var b strings.Builder
	for _, d := range sorted {
		b.WriteString(yamlScalar(d.Name) + ": " + yamlScalar(d.Dir) + "\n")
	}
	if b.Len() == 0 {
		return "{}\n"
	}
	return b.String()
}

// ElementArrayFunction is DIB's get_image_element_array as bash exports
// it (the value of BASH_FUNC_get_image_element_array%%): a function that
// echoes "[name]=dir " for each element, in order, for
// `eval declare -A image_elements=($(get_image_element_array))` (bash
// cannot export the array itself).
func ElementArrayFunction(dirs []ElementDir) string {
	var b strings.Builder
	for _, d := range dirs {
		b.WriteString("[" + d.Name + "]=" + d.Dir + " ")
	}
	return "() {  echo \"" + b.String() + "\"\n}"
}

// yamlImplicit are the plain scalars YAML 1.1 would read as another type
// (bool, null, number): PyYAML quotes such strings.
var yamlImplicit = regexp.MustCompile(`^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|null|Null|NULL|~|[-+]?(?:0|[1-9][0-9_]*|0[0-7_]+|0x[0-9a-fA-F_]+|0b[01_]+|[0-9][0-9_]*(?::[0-5]?[0-9])+)|[-+]?(?:[0-9][0-9_]*)?\.[0-9_]*(?:[eE][-+][0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$`)

// yamlScalar writes s as PyYAML's safe_dump writes a string: plain when
// it can be read back as the same string, else single-quoted.
func yamlScalar(s string) string {
	plain := s != "" && !yamlImplicit.MatchString(s) &&
		!strings.ContainsAny(s[:1], "#,[]{}&*!|>'\"%@`") &&
		!(strings.ContainsAny(s[:1], "-?:") && (len(s) == 1 || s[1] == ' ')) &&
		!strings.Contains(s, ": ") && !strings.Contains(s, " #") && !strings.HasSuffix(s, ":") &&
		strings.TrimSpace(s) == s
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			plain = false
		}
	}
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
