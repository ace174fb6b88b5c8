package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/compiler/plan/render"
	"github.com/dibuild/dib/runtime/disk"
	"github.com/dibuild/dib/runtime/preflight"
	"github.com/dibuild/dib/spec/diag"
)

// PlanCmd compiles a Dibfile into its build plan and shows it.
type PlanCmd struct {
	PlanInput
	File    string `arg:"" optional:"" default:"Dibfile" help:"The Dibfile (default: Dibfile)."`
	JSON    bool   `help:"Print the plan as JSON (the plan file format)." xor:"format"`
	Dot     bool   `help:"Print the step graph in Graphviz DOT." xor:"format"`
	Out     string `short:"o" placeholder:"FILE" help:"Write the plan file that 'dib apply' accepts (a directory for multi-image Dibfiles)."`
	Explain string `placeholder:"STEP" help:"Print the inputs hashed into a step's ID (ID or prefix)."`
	Verbose bool   `short:"v" help:"Show environment.d files, full step IDs and tools per step."`
}

// Help is shown by `dib plan --help`.
func (PlanCmd) Help() string {
	return `Shows what a build will do, without doing it: the elements and who provides
what, every phase with its scripts in order, the packages per phase, the
environment (secrets hidden), the disk layout, the outputs and the host tools.

Examples:
  dib plan examples/debian-vm.yaml
  dib plan --json Dibfile > plan.json
  dib plan -o plan.json Dibfile && dib apply plan.json
  dib plan --dot Dibfile | dot -Tsvg > plan.svg`
}

// Run compiles and renders.
func (c PlanCmd) Run(g *Globals) error {
	plans, err := loadPlans(g, c.File, c.PlanInput)
	if err != nil {
		return err
	}
	if c.Explain != "" {
		return explain(g.Stdout, plans, c.Explain)
	}
	if c.Out != "" {
		for _, p := range plans {
			out := c.Out
			if len(plans) > 1 {
				out = filepath.Join(c.Out, p.Image.Name+".plan.json")
			}
			if err := writeFileAtomic(out, p.WriteJSON); err != nil {
				return err
			}
			fmt.Fprintf(g.Stderr, "wrote plan %s of image %s to %s\n", plan.ShortID(p.ID), p.Image.Name, out)
		}
		return nil
	}
	for i, p := range plans {
		switch {
		case c.JSON:
			if err := p.WriteJSON(g.Stdout); err != nil {
				return err
			}
		case c.Dot:
			if err := render.DOT(g.Stdout, p); err != nil {
				return err
			}
		default:
			if i > 0 {
				fmt.Fprintln(g.Stdout)
			}
			preflight.Check(p, nil)
			hostLimits(p)
			if err := render.Text(g.Stdout, p, render.Options{Color: !g.NoColor && isTerminal(g.Stdout), Verbose: c.Verbose}); err != nil {
				return err
			}
		}
	}
	return nil
}

func explain(w io.Writer, plans []*plan.Plan, id string) error {
	var firstErr error
	for _, p := range plans {
		lines, err := p.Explain(id)
		if err != nil {
			firstErr = err
			continue
		}
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
		return nil
	}
	return firstErr
}

// hostLimits adds, as warnings of the text rendering, what this host
// cannot assemble (e.g. LVM thin pools without device-mapper), so the plan
// shows it before `dib apply` refuses.
func hostLimits(p *plan.Plan) {
	for _, s := range p.Steps {
		if s.Partition == nil || s.Partition.Layout == nil {
			continue
		}
		for _, d := range disk.Check(s.Partition.Layout) {
			d.Severity = diag.Warning
			d.Hint = strings.TrimSpace(d.Hint + " (dib apply refuses this layout on this host)")
			p.Diagnostics = append(p.Diagnostics, d)
		}
	}
}
