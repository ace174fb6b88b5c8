package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dibuild/dib/compiler/starter"
	"github.com/dibuild/dib/schema"
	"github.com/dibuild/dib/spec/diag"
)

// schemaFileName is the schema file `dib init` writes next to the Dibfile,
// for the modeline of editors (offline, relative).
const schemaFileName = schema.ModelinePath

// InitCmd writes a commented starter Dibfile.
type InitCmd struct {
	Distro   string `default:"debian-minimal" placeholder:"ELEMENT" help:"Operating-system element: debian-minimal, ubuntu-minimal, centos-minimal, …"`
	Release  string `placeholder:"RELEASE" help:"The distribution's release (default: diskimage-builder's for that element)."`
	Layout   string `default:"efi" enum:"efi,gpt,mbr,efi-4k,efi-lvm,none" help:"Disk layout: efi, gpt, mbr, efi-4k, efi-lvm, or none for a root filesystem tarball."`
	Name     string `placeholder:"NAME" help:"Image name (default: DISTRO-vm, or DISTRO-rootfs without a disk)."`
	Output   string `short:"o" default:"Dibfile" placeholder:"FILE" help:"Where to write it; - for standard output."`
	NoSchema bool   `name:"no-schema" help:"Do not write dibfile.schema.json next to it (the file editors check the Dibfile with)."`
	Force    bool   `help:"Overwrite an existing file."`
}

// Help is shown by `dib init --help`.
func (InitCmd) Help() string {
	return `Writes a Dibfile to start from, every key explained in a comment with its
diskimage-builder flag or variable, and dibfile.schema.json beside it so that
editors with yaml-language-server complete and check it offline.

Examples:
  dib init
  dib init --distro ubuntu-minimal --release noble --layout gpt
  dib init --layout none -o rootfs.yaml`
}

// Run writes the files.
func (c InitCmd) Run(g *Globals) error {
	withSchema := !c.NoSchema && c.Output != "-"
	url := ""
	if withSchema {
		url = schemaFileName
	}
	out, err := starter.Dibfile(starter.Options{Distro: c.Distro, Release: c.Release, Layout: c.Layout, Name: c.Name, SchemaURL: url})
	if err != nil {
		_ = diag.Diagnostics{diag.Errorf("%v", err).WithHint("dib init --help lists the choices")}.WriteText(g.Stderr)
		return exitError{code: exitUsage}
	}
	if c.Output == "-" {
		_, err := g.Stdout.Write(out)
		return err
	}
	if _, err := os.Stat(c.Output); err == nil && !c.Force {
		_ = diag.Diagnostics{diag.Errorf("%s exists", c.Output).WithHint("--force overwrites it, -o writes another file")}.WriteText(g.Stderr)
		return exitError{code: exitFailed}
	}
	if err := os.WriteFile(c.Output, out, 0o644); err != nil {
		return err
	}
	written := []string{c.Output}
	if withSchema {
		path := filepath.Join(filepath.Dir(c.Output), schemaFileName)
		if err := os.WriteFile(path, schema.DibfileJSON(), 0o644); err != nil {
			return err
		}
		written = append(written, path)
	}
	_, err = fmt.Fprintf(g.Stderr, "wrote %s; next: dib validate %s && dib plan %s\n", strings.Join(written, " and "), c.Output, c.Output)
	return err
}
