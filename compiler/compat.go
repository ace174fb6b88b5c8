package compiler

import (
	"bufio"
	"bytes"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/dibuild/dib/compiler/element"
	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/spec/diag"
)

// compatRule is one thing an upstream element can do that dib's runtime
// does not provide; a hook that does it is named in the plan before
// anything runs, so the user learns it from `dib plan`, not from a failed
// build minutes later.
type compatRule struct {
	match  *regexp.Regexp
	phases []string // phase directories the rule applies to; nil: all
	why    string
	hint   string
}

var compatRules = []compatRule{
	{match: regexp.MustCompile(`^\s*(from|import)\s+diskimage_builder\b`),
		why:  "imports DIB's Python package diskimage_builder, which dib does not install",
		hint: "use a dib built-in element for this step, or rewrite the hook without DIB's Python modules"},
	{match: regexp.MustCompile(`\bdib-block-device\b|\$_LIB/dib-block-device\.py`),
		why:  "calls DIB's block-device tool; dib lays out and assembles the disk itself from the plan",
		hint: "describe the layout with block-device: (or DIB_BLOCK_DEVICE_CONFIG) instead"},
	{match: regexp.MustCompile(`(^|[\s;&|(])(sudo\s+)?(debootstrap|mmdebstrap)\s`), phases: []string{"root.d"},
		why:  "bootstraps the root filesystem again; dib's plan already has a bootstrap step that made the tree",
		hint: "drop the element, or make it the operating-system element with a dib root-filesystem provider"},
}

// compatWarnings checks the hooks of the elements that are not dib's own.
func compatWarnings(p *plan.Plan) diag.Diagnostics {
	external := map[string]string{}
	for _, e := range p.Elements {
		if e.Source != element.BuiltinName {
			external[e.Name] = e.Source
		}
	}
	var ds diag.Diagnostics
	for _, f := range p.Files {
		src, ok := external[f.Element]
		if !ok || f.SHA256 == "" || f.Mode&0o111 == 0 {
			continue
		}
		phase := path.Dir(f.Path)
		sc := bufio.NewScanner(bytes.NewReader(p.Blobs[f.SHA256]))
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for line := 1; sc.Scan(); line++ {
			text := sc.Text()
			if strings.HasPrefix(strings.TrimSpace(text), "#") {
				continue
			}
			for _, r := range compatRules {
				if r.phases != nil && !slices.Contains(r.phases, phase) {
					continue
				}
				if r.match.MatchString(text) {
					ds = append(ds, diag.Warningf("element %s (from %s): %s line %d %s", f.Element, src, f.Path, line, r.why).
						WithSubject(f.Element).WithHint("%s", r.hint))
				}
			}
		}
	}
	return ds
}
