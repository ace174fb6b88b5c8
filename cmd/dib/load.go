package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/dibuild/dib/compiler"
	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/elements"
	"github.com/dibuild/dib/spec"
	"github.com/dibuild/dib/spec/diag"
)

// PlanInput are the flags of commands that compile a Dibfile.
type PlanInput struct {
	ElementsPath []string `name:"elements-path" short:"e" placeholder:"DIR" help:"Extra element directories, searched before the Dibfile's elements-path and the built-in elements (like DIB's ELEMENTS_PATH)." env:"ELEMENTS_PATH" sep:":"`
	Image        string   `help:"Only the image with this name (multi-image Dibfiles)."`
}

// isPlanFile reports whether data is a plan file rather than a Dibfile.
func isPlanFile(data []byte) bool {
	return bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) && bytes.Contains(data, []byte(`"format_version"`))
}

// loadPlans reads a Dibfile (and compiles it) or a plan file. Diagnostics
// go to stderr; an error-severity diagnostic ends the command with exit 1.
func loadPlans(g *Globals, path string, in PlanInput) ([]*plan.Plan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		d := diag.Errorf("cannot read the file: %v", err).At(path, 0, 0)
		_ = diag.Diagnostics{d}.WriteText(g.Stderr)
		return nil, exitError{code: exitFailed}
	}
	if isPlanFile(data) {
		p, err := plan.Read(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return []*plan.Plan{p}, nil
	}
	f, ds := spec.Load(path, data, os.LookupEnv)
	if ds.HasErrors() {
		_ = ds.WriteText(g.Stderr)
		return nil, exitError{code: exitFailed}
	}
	plans, cds := compiler.Compile(f, compiler.Options{Builtin: elements.FS(), ExtraElementsPath: in.ElementsPath, DibVersion: version})
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
		return nil, fmt.Errorf("%s has no image named %q", path, in.Image)
	}
	return plans, nil
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

// isTerminal reports whether w is a terminal (for colour).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
