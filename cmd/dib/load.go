package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/dibuild/dib/compiler"
	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/elements"
	"github.com/dibuild/dib/spec"
	"github.com/dibuild/dib/spec/diag"
	"github.com/dibuild/dib/spec/limits"
)

// PlanInput are the flags of commands that compile a Dibfile.
type PlanInput struct {
	ElementsPath []string `name:"elements-path" short:"e" placeholder:"DIR" help:"Extra element directories, searched before the Dibfile's elements-path and the built-in elements (like DIB's ELEMENTS_PATH)." env:"ELEMENTS_PATH" sep:":"`
	Image        string   `help:"Only the image with this name (multi-image Dibfiles)."`
	// AllowUnknownRelease builds releases dib does not know.
	AllowUnknownRelease bool `name:"allow-unknown-release" help:"Accept a release dib does not know of its distribution (a warning instead of an error)."`
}

// isPlanFile reports whether data is a plan file rather than a Dibfile
// (after byte order marks: plan.Read skips one, and says what is wrong
// with more).
func isPlanFile(data []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(data, "\ufeff \t\r\n"), []byte("{")) && bytes.Contains(data, []byte(`"format_version"`))
}

// loadPlans reads a Dibfile (and compiles it) or a plan file. Diagnostics
// go to stderr; an error-severity diagnostic ends the command with exit 1.
func loadPlans(g *Globals, path string, in PlanInput) ([]*plan.Plan, error) {
	path, data, err := g.readInput(path)
	if err != nil {
		return nil, err
	}
	if isPlanFile(data) {
		p, err := plan.Read(bytes.NewReader(data))
		if err == nil {
			err = plan.CheckDibVersion(p.DibVersion, version)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return []*plan.Plan{p}, nil
	}
	return compileDibfile(g, path, data, in)
}

// compileDibfile loads and compiles the Dibfile data, named path in
// diagnostics. Diagnostics go to stderr; errors end the command (exit 1).
func compileDibfile(g *Globals, path string, data []byte, in PlanInput) ([]*plan.Plan, error) {
	f, ds := spec.Load(path, data, g.lookupEnv)
	if ds.HasErrors() {
		_ = ds.WriteText(g.Stderr)
		return nil, exitError{code: exitFailed}
	}
	plans, cds := compiler.Compile(f, compilerOptions(in))
	ds = append(ds, cds...)
	ds.Sort()
	if err := ds.WriteText(g.Stderr); err != nil {
		return nil, err
	}
	if ds.HasErrors() {
		return nil, exitError{code: exitFailed}
	}
	if in.Image != "" {
		for _, p := range plans {
			if p.Image.Name == in.Image {
				return []*plan.Plan{p}, nil
			}
		}
		names := make([]string, len(plans))
		for i, p := range plans {
			names[i] = p.Image.Name
		}
		d := diag.Errorf("--image %s: %s has no image of that name", in.Image, path).At(path, 0, 0).
			WithHint("its images are %s", strings.Join(names, ", "))
		if c := diag.Closest(in.Image, names); c != "" {
			d.Hint = fmt.Sprintf("did you mean %q? (its images are %s)", c, strings.Join(names, ", "))
		}
		_ = diag.Diagnostics{d}.WriteText(g.Stderr)
		return nil, exitError{code: exitUsage}
	}
	return plans, nil
}

// compilerOptions are the compiler's options for the flags in.
func compilerOptions(in PlanInput) compiler.Options {
	return compiler.Options{Builtin: elements.FS(), ExtraElementsPath: in.ElementsPath, DibVersion: version, AllowUnknownRelease: in.AllowUnknownRelease}
}

// writeFileAtomic writes through a temporary file renamed into place, so
// an interrupted write never leaves a half-written plan.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// stdinName names standard input in messages.
const stdinName = "<stdin>"

// readInput reads a file the user named, "-" being standard input, and
// returns the name to use in messages. A file that cannot be read is
// reported as a diagnostic and ends the command with exit 1.
func (g *Globals) readInput(path string) (string, []byte, error) {
	var in io.Reader
	if path == "-" {
		path = stdinName
		in = g.Stdin
		if in == nil {
			in = os.Stdin
		}
	} else {
		f, err := os.Open(path)
		if err != nil {
			_ = diag.Diagnostics{diag.Errorf("cannot read the file: %v", err).At(path, 0, 0)}.WriteText(g.Stderr)
			return path, nil, exitError{code: exitFailed}
		}
		defer f.Close()
		in = f
	}
	data, err := limits.Default().Read(in)
	if err == nil && len(data) > limits.Default().Bytes && isPlanFile(data) {
		// A plan file carries the whole hook tree and may be far larger
		// than a Dibfile: read on, to its own bound.
		var rest []byte
		rest, err = io.ReadAll(io.LimitReader(in, planFileBytes+1-int64(len(data))))
		data = append(data, rest...)
		if err == nil && len(data) > planFileBytes {
			err = fmt.Errorf("a plan file of more than %d MiB", planFileBytes>>20)
		}
	}
	if err != nil {
		_ = diag.Diagnostics{diag.Errorf("cannot read the file: %v", err).At(path, 0, 0)}.WriteText(g.Stderr)
		return path, nil, exitError{code: exitFailed}
	}
	return path, data, nil
}

// planFileBytes bounds what dib reads of a plan file (a Dibfile is bounded
// by spec/limits): a plan holds every file of the hook tree, so elements
// with large static files make plans of several megabytes.
const planFileBytes = 256 << 20

// color reports whether output to w is coloured: on a terminal, unless
// --no-color or NO_COLOR (any non-empty value, no-color.org) says not.
func (g *Globals) color(w io.Writer) bool {
	return g.colorAllowed() && isTerminal(w)
}

// colorAllowed is false with --no-color or a non-empty NO_COLOR.
func (g *Globals) colorAllowed() bool {
	v, _ := g.lookupEnv("NO_COLOR")
	return !g.NoColor && v == ""
}

// lookupEnv reads dib's environment: Globals.Environ when set (tests),
// else the process's.
func (g *Globals) lookupEnv(name string) (string, bool) {
	if g.Environ == nil {
		return os.LookupEnv(name)
	}
	for _, kv := range g.Environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v, true
		}
	}
	return "", false
}

// environ returns dib's environment as KEY=VALUE lines.
func (g *Globals) environ() []string {
	if g.Environ == nil {
		return os.Environ()
	}
	return g.Environ
}

// isTerminal reports whether w is a terminal (for colour).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
