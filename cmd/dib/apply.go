package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/dibuild/dib/compiler"
	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/runtime"
	"github.com/dibuild/dib/runtime/diskexec"
	"github.com/dibuild/dib/runtime/ns"
	"github.com/dibuild/dib/runtime/phase"
	"github.com/dibuild/dib/runtime/preflight"
	"github.com/dibuild/dib/spec/diag"
)

// ApplyCmd builds the images of a Dibfile or a plan file.
type ApplyCmd struct {
	PlanInput
	File       string   `arg:"" optional:"" default:"Dibfile" help:"The Dibfile or plan file (default: Dibfile)."`
	OutputDir  string   `name:"output-dir" short:"O" default:"." placeholder:"DIR" help:"Where the outputs, manifests and build log are written."`
	WorkDir    string   `name:"work-dir" placeholder:"DIR" env:"TMP_DIR" help:"Parent of the build directories (default: the system temp dir)."`
	ImageCache string   `name:"image-cache" placeholder:"DIR" env:"DIB_IMAGE_CACHE" help:"Cache of downloads shared by builds (default ~/.cache/image-create)."`
	NoTmpfs    bool     `name:"no-tmpfs" help:"Build on disk, not in a tmpfs."`
	MinTmpfs   int      `name:"min-tmpfs" placeholder:"GB" default:"2" help:"Build in a tmpfs only with at least twice this much RAM (GB)."`
	LogFile    string   `name:"logfile" placeholder:"FILE" help:"The build log (default OUTPUT-DIR/NAME.log)."`
	Break      []string `placeholder:"POINT" sep:"," help:"Open a shell at these points: before-PHASE, after-PHASE, after-error (DIB's break=)."`
	JSON       bool     `help:"Print progress as JSON events, one per line, on stdout."`
	Verbose    bool     `short:"v" help:"Stream every script's output, prefixed element/script |."`
	DryRun     bool     `short:"n" name:"dry-run" help:"Print the commands instead of running them."`
	Trace      bool     `short:"x" help:"Print each command before running it."`
	Install    bool     `name:"install-host-tools" help:"apt-get install the Debian packages of the host tools the plan needs and this machine lacks, before building."`
}

// Help is shown by `dib apply --help`.
func (ApplyCmd) Help() string {
	return `Builds what 'dib plan' shows: creates the root filesystem, runs the elements'
phases on the host and in the chroot with diskimage-builder's environment,
and writes the outputs. Runs as root, in a private mount namespace, so no
mount outlives the build; on failure nothing but the log is left, and the
message names the step, the script and the log.

Examples:
  sudo dib apply examples/debian-tarball.yaml
  dib plan -o plan.json Dibfile && sudo dib apply plan.json -O out/
  sudo dib apply --json Dibfile > events.jsonl
  sudo dib apply --break after-error -v Dibfile`
}

// Run re-executes dib in a private mount namespace, then builds.
func (c ApplyCmd) Run(g *Globals) error {
	if !c.DryRun {
		if os.Geteuid() != 0 {
			_ = diag.Diagnostics{diag.Errorf("dib apply needs root: it mounts filesystems and chroots into the image").
				WithHint("run it with sudo, or preview the build with 'dib plan' or 'dib apply -n'")}.WriteText(g.Stderr)
			return exitError{code: exitFailed}
		}
		if !ns.InPrivateMountNamespace() {
			code, err := ns.Reexec(context.Background(), ns.Options{Stdout: g.Stdout, Stderr: g.Stderr})
			if err != nil {
				return err
			}
			if code != 0 {
				return exitError{code: code}
			}
			return nil
		}
		if err := ns.MakeRootPrivate(); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	plans, err := loadPlans(g, c.File, c.PlanInput)
	if err != nil {
		return err
	}
	var obs runtime.Observer = runtime.TextObserver(g.Stderr)
	if c.JSON {
		obs = runtime.JSONObserver(g.Stdout)
	}
	opts := runtime.Options{
		OutputDir: c.OutputDir, WorkDir: c.WorkDir, ImageCache: c.ImageCache,
		NoTmpfs: c.NoTmpfs || c.DryRun, MinTmpfsGB: c.MinTmpfs, LogFile: c.LogFile,
		Observer: obs, DryRun: c.DryRun, Trace: c.Trace, Break: c.Break,
	}
	if c.Verbose || c.DryRun || c.Trace {
		opts.Console = g.Stderr
	}
	for _, p := range plans {
		if c.Install && !c.DryRun {
			if err := installHostTools(ctx, g, p); err != nil {
				return err
			}
		}
		o := opts
		diskexec.New(compiler.Relayout).Register(&o)
		if err := runtime.Apply(ctx, p, o); err != nil {
			renderApplyError(g, err)
			return exitError{code: exitFailed}
		}
	}
	return nil
}

// renderApplyError prints why a build failed as diagnostics.
func renderApplyError(g *Globals, err error) {
	var ds diag.Diagnostics
	var pe *phase.Error
	var se *runtime.StepError
	switch {
	case errors.As(err, &ds):
	case errors.As(err, &pe):
		ds = diag.Diagnostics{pe.Diagnostic()}
	case errors.As(err, &se):
		d := diag.Errorf("step %q failed: %v", se.Title, se.Err).WithSubject(se.Step)
		if se.LogPath != "" {
			d = d.WithHint("the full output is in %s", se.LogPath)
		}
		ds = diag.Diagnostics{d}
	default:
		ds = diag.Diagnostics{diag.Errorf("%v", err)}
	}
	if werr := ds.WriteText(g.Stderr); werr != nil {
		fmt.Fprintln(g.Stderr, err)
	}
}

// installHostTools installs the Debian packages of the plan's missing host
// tools with apt-get, in one command.
func installHostTools(ctx context.Context, g *Globals, p *plan.Plan) error {
	missing := preflight.Check(p, nil)
	if len(missing) == 0 {
		return nil
	}
	pkgs := preflight.Packages(missing)
	fmt.Fprintf(g.Stderr, "==> installing host tools: apt-get install %s\n", strings.Join(pkgs, " "))
	for _, argv := range [][]string{{"apt-get", "update", "-q"}, append([]string{"apt-get", "install", "-y", "-q", "--no-install-recommends"}, pkgs...)} {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = g.Stderr, g.Stderr
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
		}
	}
	return nil
}
