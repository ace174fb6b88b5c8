package compiler

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/spec/diag"
)

// releases are the releases dib knows of each distribution (DISTRO_NAME):
// named ones listed, numbered ones by pattern. A distribution without an
// entry is not checked.
var releases = map[string]struct {
	names   []string
	pattern *regexp.Regexp
}{
	"debian": {names: []string{"jessie", "stretch", "buster", "bullseye", "bookworm", "trixie", "forky", "duke",
		"sid", "unstable", "testing", "stable", "oldstable", "oldoldstable"}},
	"ubuntu": {names: []string{"precise", "trusty", "xenial", "bionic", "focal", "jammy", "kinetic", "lunar",
		"mantic", "noble", "oracular", "plucky", "questing"}},
	"centos":    {names: []string{"7", "8", "8-stream", "9", "9-stream", "10", "10-stream"}},
	"fedora":    {pattern: regexp.MustCompile(`^(rawhide|[2-9][0-9])$`)},
	"rhel":      {pattern: regexp.MustCompile(`^(7|8|9|10)(\.[0-9]+)?$`)},
	"rocky":     {pattern: regexp.MustCompile(`^(8|9|10)(\.[0-9]+)?$`)},
	"almalinux": {pattern: regexp.MustCompile(`^(8|9|10)(\.[0-9]+)?$`)},
	"opensuse":  {pattern: regexp.MustCompile(`^(1[5-9]\.[0-9]|tumbleweed)$`)},
}

// KnownRelease reports whether dib knows release of the distribution
// (DISTRO_NAME); a distribution dib has no list for knows every release.
func KnownRelease(distro, release string) bool {
	r, ok := releases[distro]
	if !ok {
		return true
	}
	return slices.Contains(r.names, release) || r.pattern != nil && r.pattern.MatchString(release)
}

// checkRelease reports a release the distribution does not have, at the
// place that set DIB_RELEASE, with the nearest release or the
// distribution it belongs to. allow turns the error into a warning.
func checkRelease(distro, release string, v plan.EnvVar, allow bool) diag.Diagnostics {
	if release == "" || KnownRelease(distro, release) {
		return nil
	}
	r := releases[distro]
	d := diag.Errorf("unknown release %q of %s", release, distro)
	if allow {
		d = diag.Warningf("release %q of %s is not one dib knows; building it anyway (--allow-unknown-release)", release, distro)
	}
	d = d.WithSubject("DIB_RELEASE")
	known := "releases are numbered (" + strings.TrimSuffix(strings.TrimPrefix(fmt.Sprint(r.pattern), "^"), "$") + ")"
	if len(r.names) > 0 {
		known = "known: " + strings.Join(r.names, ", ")
	}
	var others []string
	for name, o := range releases {
		if name != distro && (slices.Contains(o.names, release) || o.pattern != nil && o.pattern.MatchString(release)) {
			others = append(others, name)
		}
	}
	sort.Strings(others)
	switch c := diag.Closest(release, r.names); {
	case len(others) > 0:
		d.Hint = fmt.Sprintf("%q is a release of %s, not of %s (%s)", release, strings.Join(others, " and "), distro, known)
	case c != "":
		d.Hint = fmt.Sprintf("did you mean %q? (%s)", c, known)
	default:
		d.Hint = known
	}
	if !allow {
		d.Hint += "; --allow-unknown-release builds it anyway"
	}
	switch v.Origin.Kind {
	case "dibfile":
		d.File, d.Line, d.Col = v.Origin.File, v.Origin.Line, v.Origin.Col
	case plan.OriginEnvironmentD:
		d.Hint = "set by " + v.Origin.String() + "; " + d.Hint
	}
	return diag.Diagnostics{d}
}

// DistroDefaults returns what dib knows of an operating-system element:
// its DISTRO_NAME and the release DIB builds when none is given ("" when
// the element has none), and whether dib can build its root filesystem.
// ok is false for an element dib does not know.
func DistroDefaults(element string) (name, release string, buildable, ok bool) {
	d, ok := distros[element]
	return d.name, d.release, d.available, ok
}
