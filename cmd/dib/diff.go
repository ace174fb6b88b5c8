package main

import (
	"fmt"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/compiler/plan/render"
)

// DiffCmd compares two plans.
type DiffCmd struct {
	PlanInput
	A             string   `arg:"" help:"The first Dibfile or plan file."`
	B             string   `arg:"" help:"The second Dibfile or plan file."`
	BElementsPath []string `name:"b-elements-path" placeholder:"DIR" help:"Extra element directories for B only (compare one Dibfile against a second element tree)."`
	JSON          bool     `help:"Print the differences as JSON."`
}

// Help is shown by `dib diff --help`.
func (DiffCmd) Help() string {
	return `Compares two builds: added, removed and changed steps (and why they changed),
changed hook scripts with a unified diff, environment, packages, elements,
disk layout and outputs. A and B are Dibfiles or plan files.

Exit status: 0 when the plans build the same image, 2 when they differ, 1 on error.

Examples:
  dib diff old.plan.json Dibfile
  dib diff Dibfile Dibfile --b-elements-path ./new-elements`
}

// Run loads both sides and renders their difference.
func (c DiffCmd) Run(g *Globals) error {
	a, err := loadPlans(g, c.A, c.PlanInput)
	if err != nil {
		return err
	}
	bin := c.PlanInput
	bin.ElementsPath = append(append([]string{}, c.BElementsPath...), bin.ElementsPath...)
	b, err := loadPlans(g, c.B, bin)
	if err != nil {
		return err
	}
	if len(a) != 1 || len(b) != 1 {
		return fmt.Errorf("dib diff compares one image on each side; use --image NAME with multi-image Dibfiles")
	}
	d := plan.Compare(a[0], b[0])
	if c.JSON {
		err = render.JSON(g.Stdout, d)
	} else {
		err = render.DiffText(g.Stdout, d, render.Options{Color: g.color(g.Stdout)})
	}
	if err != nil {
		return err
	}
	if !d.Empty() {
		return exitError{code: exitDiffers}
	}
	return nil
}
