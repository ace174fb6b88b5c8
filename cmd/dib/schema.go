package main

import (
	"fmt"
	"io"
	"os"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/schema"
)

// SchemaCmd prints the JSON Schema of the Dibfile.
type SchemaCmd struct {
	Output string `short:"o" placeholder:"FILE" help:"Write the schema to FILE (e.g. dibfile.schema.json next to your Dibfiles) instead of standard output."`
	Plan   bool   `help:"The JSON Schema of plan files (dib plan -o) instead: dib apply checks every plan file against it."`
}

// Help is shown by `dib schema --help`.
func (SchemaCmd) Help() string {
	return `Prints the JSON Schema (draft 2020-12) that every Dibfile is checked against.
Editors that use yaml-language-server (VS Code's YAML extension, Neovim's
yamlls, JetBrains IDEs) check and complete a Dibfile whose first line names
the schema file, relative to the Dibfile:
  # yaml-language-server: $schema=dibfile.schema.json
The repository ships it as schema/dibfile.schema.json; docs/dibfile.md has
the editor settings.

Examples:
  dib schema --output dibfile.schema.json
  dib schema | jq '.["$defs"]["image-keys"].properties | keys'
  dib schema --plan > plan.schema.json`
}

// Run prints or writes the embedded schema.
func (c SchemaCmd) Run(g *Globals) error {
	doc := schema.DibfileJSON()
	if c.Plan {
		doc = plan.Schema()
	}
	if c.Output == "" {
		_, err := g.Stdout.Write(doc)
		return err
	}
	if err := writeFileAtomic(c.Output, func(w io.Writer) error { _, err := w.Write(doc); return err }); err != nil {
		return err
	}
	if err := os.Chmod(c.Output, 0o644); err != nil {
		return err
	}
	_, err := fmt.Fprintf(g.Stderr, "wrote %s\n", c.Output)
	return err
}
