package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/dibuild/dib/compiler/plan/render"
	"github.com/dibuild/dib/runtime"
	"github.com/dibuild/dib/runtime/ns"
	"github.com/dibuild/dib/runtime/preflight"
	"github.com/dibuild/dib/spec/diag"
	"github.com/dibuild/dib/spec/dibyaml"
)

// DiskImageCreateCmd is diskimage-builder's disk-image-create.
type DiskImageCreateCmd struct {
	Args []string `arg:"" optional:"" help:"disk-image-create's options and elements (see dib disk-image-create --help)."`
}

// RamdiskImageCreateCmd is diskimage-builder's ramdisk-image-create.
type RamdiskImageCreateCmd struct {
	Args []string `arg:"" optional:"" help:"ramdisk-image-create's options and elements (see dib ramdisk-image-create --help)."`
}

// Run builds as disk-image-create would.
func (c DiskImageCreateCmd) Run(g *Globals) error {
	return runDIB(g, dibyaml.DiskImageCreate, c.Args)
}

// Run builds as ramdisk-image-create would.
func (c RamdiskImageCreateCmd) Run(g *Globals) error {
	return runDIB(g, dibyaml.RamdiskImageCreate, c.Args)
}

// dibfileName names the in-memory Dibfile of a command line in messages
// and origins: its lines are those --print-dibfile prints.
func dibfileName(program string) string { return "(" + program + " --print-dibfile)" }

// runDIB turns a diskimage-builder command line into its Dibfile, shows
// the plan and builds it. Every failure exits 1, as diskimage-builder's do.
func runDIB(g *Globals, program string, args []string) error {
	cl, err := dibyaml.ParseCommandLine(program, args, g.environ())
	var ue *dibyaml.UsageError
	if errors.As(err, &ue) {
		_ = diag.Diagnostics{diag.Errorf("%s", ue.Message).At(program, 0, 0).
			WithHint("%s --help lists the options", program)}.WriteText(g.Stderr)
		return exitError{code: exitFailed}
	}
	if err != nil {
		return err
	}
	switch {
	case cl.Help:
		_, err := fmt.Fprint(g.Stdout, dibyaml.Usage(program))
		return err
	case cl.Version:
		_, err := fmt.Fprintf(g.Stdout, "dib %s (diskimage-builder compatible %s)\n", version, program)
		return err
	}
	if !cl.HasElements() {
		_ = diag.Diagnostics{diag.Errorf("at least one operating-system element must be given").At(program, 0, 0).
			WithHint("for example: %s vm debian-minimal", program)}.WriteText(g.Stderr)
		return exitError{code: exitFailed}
	}
	dibfile, ds := cl.Dibfile(program)
	if err := ds.WriteText(g.Stderr); err != nil {
		return err
	}
	if ds.HasErrors() {
		return exitError{code: exitFailed}
	}
	if cl.PrintDibfile {
		if _, err := g.Stdout.Write(dibfile); err != nil {
			return err
		}
		if !cl.PrintPlan {
			return nil
		}
	}
	build := !cl.PrintDibfile && !cl.PrintPlan
	// Compiled before anything else: an unknown element, release or a
	// build this host cannot do stops the command here, root or not.
	quiet := *g
	if build && !ns.InPrivateMountNamespace() {
		quiet.Stderr = io.Discard // the child reports again
	}
	plans, err := compileDibfile(&quiet, dibfileName(program), dibfile, PlanInput{AllowUnknownRelease: cl.AllowUnknownRelease})
	if err != nil {
		if quiet.Stderr == io.Discard {
			_, err = compileDibfile(g, dibfileName(program), dibfile, PlanInput{AllowUnknownRelease: cl.AllowUnknownRelease})
		}
		return err
	}
	if build {
		var ds diag.Diagnostics
		for _, p := range plans {
			ds = append(ds, refusals(p)...)
		}
		if len(ds) > 0 {
			_ = ds.WriteText(g.Stderr)
			return exitError{code: exitFailed}
		}
		if os.Geteuid() != 0 {
			return needRoot(g, program+" --print-plan")
		}
		if parent, err := privateNamespace(g); parent || err != nil { // the child prints the plan and builds
			return err
		}
	}
	for _, p := range plans {
		preflight.Check(p, nil)
		if err := render.Text(g.Stdout, p, render.Options{Color: g.color(g.Stdout)}); err != nil {
			return err
		}
	}
	if err := refuse(g, plans); err != nil || !build {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	opts := runtime.Options{
		OutputDir: cl.OutputDir, ImageCache: cl.ImageCache, NoTmpfs: cl.NoTmpfs, MinTmpfsGB: cl.MinTmpfs,
		LogFile: cl.Logfile, Break: cl.Break,
	}
	return buildPlans(ctx, g, plans, opts, false, progressView{plain: len(cl.Break) > 0})
}
