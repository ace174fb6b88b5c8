// Package lib holds the shell helpers dib provides to element hooks, the
// way diskimage-builder provides its lib/ directory:
//
//   - $_LIB: die, common-defaults, img-defaults, ramdisk-defaults,
//     common-functions, img-functions, ramdisk-functions: every file of
//     DIB's lib/ that elements source, with DIB's functions and defaults;
//   - bin/dib-run-parts, DIB's phase runner for elements that call it;
//   - bin/sudo, a shim put on PATH when dib runs as root on a host without
//     sudo, because many element hooks call `sudo`.
//
// The files are dib's own implementations, embedded in the binary.
package lib

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

//go:embed files
var files embed.FS

// Sourced are the files of DIB's lib/ that elements source, in $_LIB:
// each defines DIB's functions (or sets DIB's defaults) with DIB's
// behaviour, written for dib.
var Sourced = []string{"die", "common-defaults", "img-defaults", "ramdisk-defaults",
	"common-functions", "img-functions", "ramdisk-functions"}

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
	for _, n := range Sourced {
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

// Function returns the shell function NAME of $_LIB (e.g. "die") in the
// form bash exports functions in the environment (BASH_FUNC_NAME%%):
// "() { BODY }". The definition must be `function NAME {` … `}` at the
// start of lines.
func Function(name string) (string, error) {
	for _, f := range Sourced {
		b, err := fs.ReadFile(files, "files/"+f)
		if err != nil {
			return "", err
		}
		text := string(b)
		head := "\nfunction " + name + " {\n"
		i := strings.Index(text, head)
		if i < 0 {
			continue
		}
		body := text[i+len(head):]
		j := strings.Index(body, "\n}\n")
		if j < 0 {
			return "", fmt.Errorf("lib: function %s in %s has no closing brace", name, f)
		}
		return "() {\n" + body[:j] + "\n}", nil
	}
	return "", fmt.Errorf("lib: no function %s", name)
}

// Texts returns each helper by the name a hook reaches it with ($_LIB/NAME,
// or NAME on PATH) and its text: what a hook may read or run of dib's own.
func Texts() (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, n := range append(append([]string(nil), Sourced...), "dib-run-parts", "shims/sudo") {
		b, err := fs.ReadFile(files, "files/"+n)
		if err != nil {
			return nil, err
		}
		out[path.Base(n)] = b
	}
	return out, nil
}
