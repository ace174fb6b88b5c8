package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/dibuild/dib/spec/dibyaml"
)

// ConvertCmd turns a diskimage-builder YAML file into a Dibfile.
type ConvertCmd struct {
	File   string `arg:"" name:"file" help:"A diskimage-builder YAML file (the input of the diskimage-builder command)."`
	Output string `short:"o" placeholder:"FILE" help:"Write the Dibfile to FILE instead of standard output."`
}

// Help is shown by `dib convert --help`.
func (ConvertCmd) Help() string {
	return `Reads a file of diskimage-builder's own YAML front end (a list of image
definitions, merged as diskimage-builder merges them) and prints the
equivalent Dibfile. Keys that are broken upstream or have no equivalent
are converted or dropped with a warning on standard error.

Examples:
  dib convert images.yaml
  dib convert images.yaml -o Dibfile && dib validate Dibfile`
}

// Run converts the file and writes the result.
func (c ConvertCmd) Run(g *Globals) error {
	name, src, err := g.readInput(c.File)
	if err != nil {
		return err
	}
	out, ds := dibyaml.Convert(name, src)
	if err := ds.WriteText(g.Stderr); err != nil {
		return err
	}
	if ds.HasErrors() {
		return exitError{code: exitFailed}
	}
	if c.Output == "" {
		_, err = g.Stdout.Write(out)
		return err
	}
	// Write next to the destination, then rename: never a half-written Dibfile.
	tmp, err := os.CreateTemp(filepath.Dir(c.Output), ".dib-convert-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), c.Output); err != nil {
		return fmt.Errorf("write %s: %w", c.Output, err)
	}
	return nil
}
