package main

import (
	"github.com/dibuild/dib/compiler"
	"github.com/dibuild/dib/spec"
	"github.com/dibuild/dib/spec/diag"
)

// ValidateCmd checks Dibfiles against the schema and reports every problem.
type ValidateCmd struct {
	PlanInput
	SchemaOnly bool     `name:"schema-only" help:"Check only the file's structure (the JSON Schema and key rules), not its elements, releases and layouts."`
	JSON       bool     `help:"Print the diagnostics as a JSON array."`
	Files      []string `arg:"" optional:"" name:"file" help:"Dibfiles to check (default: Dibfile; - reads standard input)."`
}

// Help is shown by `dib validate --help`.
func (ValidateCmd) Help() string {
	return `Reports every problem of each file, sorted by position, as FILE:LINE:COL: error: MESSAGE.
Exit status: 0 when every file is valid, 1 otherwise.

Examples:
  dib validate                       # the Dibfile in this directory
  dib validate examples/*.yaml
  dib validate --json Dibfile`
}

// Run loads each file and renders the diagnostics.
func (c ValidateCmd) Run(g *Globals) error {
	files := c.Files
	if len(files) == 0 {
		files = []string{"Dibfile"}
	}
	var all diag.Diagnostics
	for _, name := range files {
		name, src, err := g.readInput(name)
		if err != nil {
			continue
		}
		f, ds := spec.Load(name, src, g.lookupEnv)
		all = append(all, ds...)
		if f != nil && !c.SchemaOnly {
			// Everything the compiler checks without network: elements,
			// releases, packages, block-device layouts.
			_, cds := compiler.Compile(f, compilerOptions(c.PlanInput))
			for _, d := range cds {
				if d.Severity == diag.Error || d.File == name {
					all = append(all, d)
				}
			}
		}
	}
	var err error
	if c.JSON {
		err = all.WriteJSON(g.Stdout)
	} else {
		err = all.WriteText(g.Stdout)
	}
	if err != nil {
		return err
	}
	if all.HasErrors() {
		return exitError{code: exitFailed}
	}
	return nil
}
