package compiler

import (
	"fmt"
	"strings"

	"github.com/dibuild/dib/compiler/plan"
)

// debootstrapExtraArgs applies DIB_DEBOOTSTRAP_EXTRA_ARGS, the debootstrap
// options DIB's debootstrap element adds to its bootstrap command, to the
// mmdebstrap bootstrap: each option is mapped to what it means there, and
// the ones that mean nothing to mmdebstrap are returned as notes (the
// plan shows them as warnings) instead of being passed on or dropped
// silently. Words are split as bash splits the unquoted variable.
func debootstrapExtraArgs(boot *plan.Bootstrap, args string) (notes []string) {
	words := strings.Fields(args)
	for i := 0; i < len(words); i++ {
		w := words[i]
		name, val, hasVal := strings.Cut(w, "=")
		// debootstrap also takes "--opt VALUE" for its valued options.
		valued := map[string]bool{"--include": true, "--exclude": true, "--components": true, "--variant": true,
			"--keyring": true, "--arch": true, "--extractor": true, "--cache-dir": true, "--private-key": true,
			"--certificate": true, "--make-tarball": true, "--unpack-tarball": true}
		if !hasVal && valued[name] && i+1 < len(words) {
			val, hasVal = words[i+1], true
			i++
		}
		switch name {
		case "--include":
			boot.Include = append(boot.Include, splitList(val)...)
		case "--components":
			boot.Components = splitList(val)
		case "--variant":
			if val == "fakechroot" {
				notes = append(notes, fmt.Sprintf("%s: mmdebstrap has no fakechroot variant here (dib bootstraps as root); the variant stays %s", w, boot.Variant))
				continue
			}
			boot.Variant = val
		case "--keyring":
			boot.Keyrings = []string{val}
		case "--no-check-gpg":
			boot.ExtraArgs = append(boot.ExtraArgs, `--aptopt=Acquire::AllowInsecureRepositories "true"`, `--aptopt=APT::Get::AllowUnauthenticated "true"`)
		case "--merged-usr":
			boot.ExtraArgs = append(boot.ExtraArgs, "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr")
		case "--no-merged-usr":
			boot.ExtraArgs = append(boot.ExtraArgs, "--hook-dir=/usr/share/mmdebstrap/hooks/no-merged-usr")
		case "--verbose", "--print-debs", "--keep-debootstrap-dir", "--resolve-deps", "--force-check-gpg", "--log-extra-deps":
			notes = append(notes, fmt.Sprintf("%s: debootstrap's output/checking option; mmdebstrap does this by itself, nothing to pass on", w))
		case "--arch":
			notes = append(notes, fmt.Sprintf("%s: the architecture is arch: (%s) for the whole build; not passed on", w, boot.Arch))
		case "--exclude":
			notes = append(notes, fmt.Sprintf("%s: mmdebstrap cannot leave packages out of a variant's set; not passed on (remove them in a hook instead)", w))
		default:
			notes = append(notes, fmt.Sprintf("%s: no mmdebstrap meaning; not passed on", w))
		}
	}
	return notes
}

// splitList splits debootstrap's comma (or space) separated lists.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}
