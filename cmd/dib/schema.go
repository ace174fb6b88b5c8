package main

import (
	"github.com/dibuild/dib/schema"
)

// SchemaCmd prints the JSON Schema of the Dibfile.
type SchemaCmd struct{}

// Help is shown by `dib schema --help`.
func (SchemaCmd) Help() string {
	return `Prints the JSON Schema (draft 2020-12) that every Dibfile is checked against.
Its $id is ` + schema.DibfileID + `; editors using yaml-language-server
can check and complete Dibfiles with a first line
  # yaml-language-server: $schema=` + schema.DibfileID + `

Example:
  dib schema > dibfile.schema.json`
}

// Run prints the embedded schema.
func (SchemaCmd) Run(g *Globals) error {
	_, err := g.Stdout.Write(schema.DibfileJSON())
	return err
}
