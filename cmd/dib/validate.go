package main

import (
	"os"

	"github.com/dibuild/dib/spec"
	"github.com/dibuild/dib/spec/diag"
)

// ValidateCmd checks Dibfiles against the schema and reports every problem.
type ValidateCmd struct {
	JSON  bool     `help:"Print the diagnostics as a JSON array."`
	Files []string `arg:"" optional:"" name:"file" help:"Dibfiles to check (default: Dibfile)."`
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
		src, err := os.ReadFile(name)
		if err != nil {
			all = append(all, diag.Errorf("cannot read the file: %v", err).At(name, 0, 0))
			continue
		}
		_, ds := spec.Load(name, src, os.LookupEnv)
		all = append(all, ds...)
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
