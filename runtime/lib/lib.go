// Package lib holds the shell helpers dib provides to element hooks, the
// way diskimage-builder provides its lib/ directory:
//
//   - $_LIB: die, common-functions, common-defaults, img-functions (the
//     subset of DIB's functions third-party elements source);
//   - bin/dib-run-parts, DIB's phase runner for elements that call it;
//   - bin/sudo, a shim put on PATH when dib runs as root on a host without
//     sudo, because many element hooks call `sudo`.
//
// The files are dib's own implementations, embedded in the binary.
package lib

import (
	"embed"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

//go:embed files
var files embed.FS

// Paths says where Write put the helpers.
type Paths struct {
	Lib string // the $_LIB directory
	Bin string // a directory for PATH (dib-run-parts, maybe sudo)
}

// Options tune Write.
type Options struct {
	// SudoShim installs bin/sudo; see NeedSudoShim.
	SudoShim bool
}

// NeedSudoShim reports whether hooks need dib's sudo: dib runs as root and
// the host has no sudo.
func NeedSudoShim() bool {
	if os.Geteuid() != 0 {
		return false
	}
	_, err := exec.LookPath("sudo")
	return err != nil
}

// Write writes the helpers under dir: dir/lib and dir/bin.
func Write(dir string, o Options) (Paths, error) {
	p := Paths{Lib: filepath.Join(dir, "lib"), Bin: filepath.Join(dir, "bin")}
	for _, d := range []string{p.Lib, p.Bin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return Paths{}, err
		}
	}
	put := func(src, dst string, mode os.FileMode) error {
		b, err := fs.ReadFile(files, "files/"+src)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, mode)
	}
	for _, n := range []string{"die", "common-functions", "common-defaults", "img-functions"} {
		if err := put(n, filepath.Join(p.Lib, n), 0o644); err != nil {
			return Paths{}, err
		}
	}
	if err := put("dib-run-parts", filepath.Join(p.Lib, "dib-run-parts"), 0o755); err != nil {
		return Paths{}, err
	}
	if err := put("dib-run-parts", filepath.Join(p.Bin, "dib-run-parts"), 0o755); err != nil {
		return Paths{}, err
	}
	if o.SudoShim {
		if err := put("shims/sudo", filepath.Join(p.Bin, "sudo"), 0o755); err != nil {
			return Paths{}, err
		}
	}
	return p, nil
}

// File returns one embedded helper (e.g. "dib-run-parts", "shims/sudo").
func File(name string) ([]byte, error) { return fs.ReadFile(files, "files/"+name) }

var scriptName = regexp.MustCompile(`^[0-9A-Za-z_-]+$`)

// Runnable applies dib-run-parts' rule to one entry of a phase directory:
// an executable regular file (symlinks followed) whose name matches
// ^[0-9A-Za-z_-]+$. It returns why not otherwise.
func Runnable(name string, mode fs.FileMode) (bool, string) {
	switch {
	case !scriptName.MatchString(name):
		return false, "name does not match ^[0-9A-Za-z_-]+$"
	case !mode.IsRegular():
		return false, "not a regular file"
	case mode.Perm()&0o111 == 0:
		return false, "not executable"
	}
	return true, ""
}

// SortN sorts names as `LC_ALL=C sort -n` does: by the leading number
// (none counts as 0), then bytewise.
func SortN(names []string) {
	sort.SliceStable(names, func(i, j int) bool {
		if c := compareNumeric(names[i], names[j]); c != 0 {
			return c < 0
		}
		return names[i] < names[j]
	})
}

// leadingNumber splits sort -n's key: sign and integer digits without
// leading zeros (names of phase files have no blanks or decimal points
// worth honouring: '.' is not allowed in them).
func leadingNumber(s string) (neg bool, digits string) {
	if strings.HasPrefix(s, "-") {
		neg = true
		s = s[1:]
	}
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	digits = strings.TrimLeft(s[:n], "0")
	if digits == "" {
		neg = false // -0 and no number are both 0
	}
	return neg, digits
}

func compareNumeric(a, b string) int {
	an, ad := leadingNumber(a)
	bn, bd := leadingNumber(b)
	if an != bn {
		if an {
			return -1
		}
		return 1
	}
	c := compareDigits(ad, bd)
	if an {
		return -c
	}
	return c
}

func compareDigits(a, b string) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}
