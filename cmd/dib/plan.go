package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/compiler/plan/render"
	"github.com/dibuild/dib/runtime"
	"github.com/dibuild/dib/runtime/cache"
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
	CacheFlags
	NoCache bool `name:"no-cache" help:"Do not look at the build cache: every step shows as 'will run'."`
	Refresh bool `help:"Show results of steps that use a package mirror as not reusable (dib apply --refresh)."`
	RegistryFlags
	// NoHostCheck plans for another machine.
	NoHostCheck bool `name:"no-host-check" help:"Exit 0 even when this host or this version of dib cannot build the plan (a plan for another machine)."`
}

// cacheOptions are the options of the build cache report: the local
// cache, and the registry of --cache-from (else the plan's
// cache.registry) that an apply would pull from.
func (c PlanCmd) cacheOptions() (runtime.Options, error) {
	o := runtime.Options{CacheDir: c.CacheFlags.dir(), NoCache: c.NoCache, Refresh: c.Refresh, NoCacheRegistry: c.CacheFrom == "off"}
	if o.CacheDir == "" {
		if c.CacheFrom != "" && c.CacheFrom != "off" {
			return o, errors.New("--cache-from needs a local build cache (not --cache-dir off), as with dib apply: entries pass through it")
		}
		return o, nil
	}
	var err error
	if o.CacheFrom, err = c.RegistryFlags.from(); err != nil {
		return o, err
	}
	o.CacheSecretKey, err = c.secretKey()
	return o, err
}

// cacheReport asks the build cache, and the registry, what an apply would
// reuse; nil when there is no cache (--cache-dir off) or it cannot be
// read (e.g. it is root's and this is not root). What kept the registry from being used is written to w, each
// message once.
func cacheReport(w io.Writer, p *plan.Plan, o runtime.Options, said map[string]bool) *runtime.CacheReport {
	r, err := runtime.PlanCache(context.Background(), p, o)
	if err != nil || r == nil {
		return nil
	}
	var ds diag.Diagnostics
	for _, msg := range r.RegistryErrors {
		if !said[msg] {
			said[msg] = true
			ds = append(ds, diag.Warningf("%s", msg).WithHint("the steps show as they would without the registry"))
		}
	}
	_ = ds.WriteText(w)
	return r
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
	cacheOpts, err := c.cacheOptions()
	if err != nil {
		_ = diag.Diagnostics{diag.Errorf("%v", err)}.WriteText(g.Stderr)
		return exitError{code: exitUsage}
	}
	plans, err := loadPlans(g, c.File, c.PlanInput)
	if err != nil {
		return err
	}
	if c.Explain != "" {
		return c.explain(g, plans, c.Explain, cacheOpts)
	}
	if err := c.render(g, plans, cacheOpts); err != nil {
		return err
	}
	if c.NoHostCheck {
		return nil
	}
	return refuse(g, plans)
}

// render prints or writes the plans; the text shows what the build cache
// (cacheOpts) would do with each step.
func (c PlanCmd) render(g *Globals, plans []*plan.Plan, cacheOpts runtime.Options) error {
	said := map[string]bool{}
	if c.Out != "" {
		if err := planOutDir(g, c.Out, plans); err != nil {
			return err
		}
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
			opts := render.Options{Color: g.color(g.Stdout), Verbose: c.Verbose}
			if r := cacheReport(g.Stderr, p, cacheOpts, said); r != nil {
				opts.Cache = r.Status
			}
			if err := render.Text(g.Stdout, p, opts); err != nil {
				return err
			}
		}
	}
	return nil
}

// planOutDir checks -o for a multi-image Dibfile: it must be a directory
// (made when missing), one plan file per image in it.
func planOutDir(g *Globals, out string, plans []*plan.Plan) error {
	if len(plans) < 2 {
		return nil
	}
	names := make([]string, len(plans))
	for i, p := range plans {
		names[i] = p.Image.Name + ".plan.json"
	}
	st, err := os.Stat(out)
	switch {
	case err == nil && st.IsDir():
		return nil
	case err == nil:
		_ = diag.Diagnostics{diag.Errorf("-o %s is a file: this Dibfile has %d images, so -o names a directory for their plan files (%s)", out, len(plans), strings.Join(names, ", ")).
			WithHint("give a directory (made if missing), or pick one image with --image NAME")}.WriteText(g.Stderr)
		return exitError{code: exitUsage}
	case strings.HasSuffix(out, ".json"):
		_ = diag.Diagnostics{diag.Errorf("-o %s: this Dibfile has %d images, so -o names a directory for their plan files (%s)", out, len(plans), strings.Join(names, ", ")).
			WithHint("give a directory (made if missing), or pick one image with --image NAME")}.WriteText(g.Stderr)
		return exitError{code: exitUsage}
	}
	return os.MkdirAll(out, 0o755)
}

// explain prints the lines hashed into a step's ID and, when the build
// cache is readable, the step's cache key inputs, what the cache will do
// with it and, for a step that runs, the inputs that changed.
func (c PlanCmd) explain(g *Globals, plans []*plan.Plan, id string, cacheOpts runtime.Options) error {
	w := g.Stdout
	var firstErr error
	for _, p := range plans {
		lines, err := p.Explain(id)
		if err != nil {
			firstErr = err
			continue
		}
		for _, l := range lines {
			fmt.Fprintln(w, diag.Escape(l)) // values from the Dibfile: no control characters to the terminal
		}
		s, _ := p.Step(id)
		if r := cacheReport(g.Stderr, p, cacheOpts, map[string]bool{}); r != nil && s != nil {
			fmt.Fprintln(w, "\ncache key:")
			for _, l := range r.Inputs[s.ID] {
				fmt.Fprintln(w, "  "+diag.Escape(l))
			}
			fmt.Fprintln(w, "cache: "+r.Status[s.ID])
			for _, ch := range r.Changes[s.ID] {
				fmt.Fprintln(w, "  "+diag.Escape(ch))
			}
			if pk, ok := r.Packages[s.ID]; ok {
				fmt.Fprintf(w, "packages its cached result installed (%d, from the mirror %s ago):\n", len(pk), cache.Age(time.Since(r.MirrorTime[s.ID])))
				for _, l := range pk {
					fmt.Fprintln(w, "  "+diag.Escape(l))
				}
			}
		}
		return nil
	}
	return firstErr
}

// refuse reports, after the plan, why `dib apply` would refuse a plan on
// this host or in this version of dib (a root-filesystem provider or
// output format it lacks, a layout this host cannot assemble), and ends
// the command with exit 1. Missing host tools (--install-host-tools) and
// secrets (given when applying) are not reasons.
func refuse(g *Globals, plans []*plan.Plan) error {
	var ds diag.Diagnostics
	for _, p := range plans {
		ds = append(ds, refusals(p)...)
	}
	if len(ds) == 0 {
		return nil
	}
	_ = ds.WriteText(g.Stderr)
	return exitError{code: exitFailed}
}

// refusals are the reasons of refuse for one plan, each naming its image.
func refusals(p *plan.Plan) diag.Diagnostics {
	secrets := map[string]string{}
	for _, e := range p.Env {
		if e.Secret {
			secrets[e.Name] = "-"
		}
	}
	opts := runtime.Options{DryRun: true, Secrets: secrets}
	var ds diag.Diagnostics
	if err := runtime.Check(p, opts); err != nil {
		if !errors.As(err, &ds) {
			ds = diag.Diagnostics{diag.Errorf("%v", err)}
		}
	}
	for _, s := range p.Steps {
		if s.Partition == nil || s.Partition.Layout == nil {
			continue
		}
		ds = append(ds, disk.Check(s.Partition.Layout)...)
	}
	for i := range ds {
		ds[i].Severity = diag.Error
		msg := ds[i].Message
		if ds[i].Subject != "" && ds[i].File == "" && len(ds[i].Subject) < 40 {
			msg = ds[i].Subject + ": " + msg
		}
		ds[i].Message = fmt.Sprintf("dib apply cannot build image %s here: %s", p.Image.Name, msg)
		if ds[i].File == "" && p.Image.Source != "" {
			ds[i].File = p.Image.Source
			ds[i].Subject = ""
		}
	}
	return ds
}
