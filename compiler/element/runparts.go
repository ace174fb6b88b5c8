package element

import (
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/dibuild/dib/spec/diag"
)

// numKey is the key `sort -n` reads at the start of a line in the C
// locale: optional blanks, an optional '-', digits, an optional '.' and
// digits. No digits at all is zero. There is no thousands separator in the
// C locale and no exponent ("1e3" is 1).
type numKey struct {
	neg  bool
	intp string // integer digits, leading zeros removed
	frac string // fraction digits, trailing zeros removed
}

func parseNumKey(s string) numKey {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	var k numKey
	if i < len(s) && s[i] == '-' {
		k.neg = true
		i++
	}
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	k.intp = strings.TrimLeft(s[start:i], "0")
	if i < len(s) && s[i] == '.' {
		i++
		fs := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		k.frac = strings.TrimRight(s[fs:i], "0")
	}
	if k.intp == "" && k.frac == "" {
		k.neg = false // -0 == 0
	}
	return k
}

// cmpMagnitude compares the absolute values of two keys.
func cmpMagnitude(a, b numKey) int {
	if len(a.intp) != len(b.intp) {
		if len(a.intp) < len(b.intp) {
			return -1
		}
		return 1
	}
	if c := strings.Compare(a.intp, b.intp); c != 0 {
		return c
	}
	return strings.Compare(a.frac, b.frac) // no trailing zeros: plain string order works
}

// cmpNum compares like GNU sort -n's numcompare.
func cmpNum(a, b numKey) int {
	switch {
	case a.neg && !b.neg:
		return -1
	case !a.neg && b.neg:
		return 1
	case a.neg:
		return -cmpMagnitude(a, b)
	}
	return cmpMagnitude(a, b)
}

// lessRunParts is the order of `LC_ALL=C sort -n`: numeric prefix, then,
// for equal numbers, sort's last-resort bytewise comparison of the whole
// line. So "A-upper" < "noprefix" < "01-x" < "1e3" < "05-x" < "10-x" <
// "100-x" (oracle case fixture-sort-demo).
func lessRunParts(a, b string) bool {
	if c := cmpNum(parseNumKey(a), parseNumKey(b)); c != 0 {
		return c < 0
	}
	return a < b
}

// runPartsName is dib-run-parts' RUN_PARTS_REGEX, ^[0-9A-Za-z_-]+$.
func runPartsName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// envName is dib-run-parts' environment.d filter, grep -E
// "/[0-9A-Za-z_\.-]+$": inside an ERE bracket the backslash is literal, so
// it is allowed too.
func envName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_' || c == '-' || c == '.' || c == '\\') {
			return false
		}
	}
	return true
}

// listPhase is `dib-run-parts --list DIR` on the merged tree, plus why
// every other entry is left out: `find DIR -maxdepth 1 -xtype f
// -executable` (a regular file or a symlink to one, any x bit since builds
// run as root), the name regex, then sort -n.
func (r *resolver) listPhase(root *node, dir string, d *node) (run []Script, skipped []Skipped) {
	names := slices.Sorted(maps.Keys(d.kids))
	for _, name := range names {
		n := d.kids[name]
		rel := dir + "/" + name
		sc := Script{Name: name, Element: n.element, Path: rel, Target: rel}
		if n.byInstallTypes {
			sc.LinkedBy = installTypesElement
		}
		skip := func(reason string) {
			els := []string{n.element}
			if n.isDir() {
				els = append([]string(nil), n.elements...)
			}
			skipped = append(skipped, Skipped{Name: name, Elements: els, Reason: reason})
		}
		t := n
		if n.isLink() {
			tn, canon, st := resolve(root, rel)
			switch st {
			case resMissing:
				skip(ReasonBroken)
				continue
			case resOutside:
				// The target is outside the hook tree (an absolute link, or
				// one leaving it): only the build host or chroot can tell.
				sc.Target = ""
				if !runPartsName(name) {
					skip(ReasonName)
					continue
				}
				r.diags = r.diags.Append(diag.Warningf("%s is a symlink to %s, outside the hook tree; dib assumes it is an executable file", rel, n.link).WithSubject(n.element))
				run = append(run, sc)
				continue
			}
			t, sc.Target = tn, canon
		}
		switch {
		case t.isDir():
			skip(ReasonDirectory)
		case !t.mode.IsRegular():
			skip(ReasonNotRegular)
		case t.mode.Perm()&0o111 == 0:
			skip(ReasonNotExec)
		case !runPartsName(name):
			skip(ReasonName)
		default:
			run = append(run, sc)
		}
	}
	sort.SliceStable(run, func(i, j int) bool { return lessRunParts(run[i].Name, run[j].Name) })
	return run, skipped
}

// listEnvironment is dib-run-parts' source_environment: `find
// environment.d -maxdepth 1 -xtype f`, the name filter, then sort -n on
// the full path, which starts with '/' and so has no number: the order is
// bytewise. No executable check.
func listEnvironment(root *node) []EnvFile {
	d := root.kids["environment.d"]
	if d == nil || !d.isDir() {
		return nil
	}
	var out []EnvFile
	for name, n := range d.kids {
		if !envName(name) {
			continue
		}
		t := n
		if n.isLink() {
			tn, _, st := resolve(root, "environment.d/"+name)
			switch st {
			case resMissing:
				continue
			case resOutside:
				out = append(out, EnvFile{File: name, Element: n.element})
				continue
			}
			t = tn
		}
		if t.mode.IsRegular() {
			out = append(out, EnvFile{File: name, Element: n.element})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].File < out[j].File })
	return out
}

// withInstallTypeEnv adds (or replaces) 11-dib-install-type.bash, which
// disk-image-create writes into environment.d after root.d has run.
func withInstallTypeEnv(list []EnvFile) []EnvFile {
	const name = "11-dib-install-type.bash"
	out := make([]EnvFile, 0, len(list)+1)
	for _, e := range list {
		if e.File != name {
			out = append(out, e)
		}
	}
	out = append(out, EnvFile{File: name, Element: InstallTypeEnvElement})
	sort.Slice(out, func(i, j int) bool { return out[i].File < out[j].File })
	return out
}
