// Package runtime executes a dib plan: `dib apply`. It never reads a
// Dibfile or an element directory; everything comes from the plan.
//
// Apply creates the workspace (tmpfs when memory allows), bootstraps the
// root filesystem, writes the hook tree, runs DIB's phases on the host and
// in the chroot with DIB's environment, installs the Dibfile's packages,
// writes manifests and the tree outputs, and reports progress as Events.
// Every resource goes on one cleanup stack released on success, failure
// or cancellation; after a failure no mount, process, temp dir or output
// is left, and the error names the step, script and log.
//
// Run Apply in a private mount namespace (runtime/ns) so that even a
// SIGKILL cannot leak a mount to the host.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/runtime/chroot"
	"github.com/dibuild/dib/runtime/lib"
	"github.com/dibuild/dib/runtime/preflight"
	"github.com/dibuild/dib/runtime/rootfs"
	"github.com/dibuild/dib/runtime/shell"
	"github.com/dibuild/dib/runtime/stack"
	"github.com/dibuild/dib/runtime/workspace"
	"github.com/dibuild/dib/spec/diag"
)

// Options tune one Apply.
type Options struct {
	// OutputDir is where relative output paths are written; default ".".
	OutputDir string
	// WorkDir is the parent of the build directories (DIB's TMP_DIR).
	WorkDir string
	// ImageCache is DIB_IMAGE_CACHE (apt archives, sources); default
	// ~/.cache/image-create.
	ImageCache string
	NoTmpfs    bool
	MinTmpfsGB int
	// Secrets holds the values of the plan's secret variables by name; they
	// override the plan's in-memory Secrets (a compiled Dibfile has them, a
	// plan file does not).
	Secrets map[string]string
	// LogFile receives the full output; default OUTPUTDIR/NAME.log.
	LogFile string
	// Console receives every output line as it comes (prefixed), e.g. a
	// terminal with -v; nil: only the log.
	Console io.Writer
	// Observer receives progress events.
	Observer Observer
	// DryRun prints the commands instead of running them (-n); Trace
	// prints them too (-x); DebugTrace sets DIB_DEBUG_TRACE.
	DryRun, Trace bool
	DebugTrace    int
	// Break lists DIB breakpoints ("before-install", "after-error", …):
	// an interactive shell opens there.
	Break []string
	// Executors run step kinds the core runtime does not (disk assembly:
	// image-size, partition, filesystem, bootloader, disk outputs).
	Executors map[string]Executor
	// OutputWriters write output formats the core does not (qcow2, raw…).
	OutputWriters map[string]Executor
	// HostResolvConf is copied into the chroot; default /etc/resolv.conf.
	HostResolvConf string
	// Getenv reads the caller's environment; default os.Getenv.
	Getenv func(string) string
}

// Executor runs one plan step.
type Executor interface {
	Run(ctx context.Context, b *Build, s *plan.Step) error
}

// ExecutorFunc adapts a function to Executor.
type ExecutorFunc func(ctx context.Context, b *Build, s *plan.Step) error

// Run calls f.
func (f ExecutorFunc) Run(ctx context.Context, b *Build, s *plan.Step) error { return f(ctx, b, s) }

// Build is the state of one Apply, handed to Executors.
type Build struct {
	Plan      *plan.Plan
	Options   Options
	Workspace *workspace.Workspace
	Stack     *stack.Stack
	Shell     *shell.Runner
	// HostEnv and ChrootEnv are the scripts' environments (KEY=VALUE).
	HostEnv, ChrootEnv []string
	Lib                lib.Paths
	Log                io.Writer
	LogPath            string
	// ChrootRoot is the tree in-chroot phases run in: TargetRoot, until a
	// disk executor moves the tree into the mounted image (TMP_MOUNT_PATH).
	ChrootRoot string

	hooksWritten bool
	chrootMark   int
	chrootOn     bool
	finalised    bool
	outputs      []string
	observer     Observer
	step         *plan.Step
	stepIndex    int
}

// StepError is a failed step.
type StepError struct {
	Step    string // ID
	Kind    string
	Title   string
	LogPath string
	Err     error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("step %q (%s, %s) failed: %v", e.Title, e.Kind, plan.ShortID(e.Step), e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// Apply executes p. It returns nil when every step succeeded, else a
// *StepError (or diag.Diagnostics for a plan it refuses before starting).
func Apply(ctx context.Context, p *plan.Plan, opts Options) (err error) {
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.OutputDir == "" {
		opts.OutputDir = "."
	}
	if opts.ImageCache == "" {
		home := opts.Getenv("HOME")
		if home == "" {
			home = "/root"
		}
		opts.ImageCache = filepath.Join(home, ".cache", "image-create")
	}
	if p == nil {
		return errors.New("no plan")
	}
	merged := map[string]string{}
	for k, v := range p.Secrets {
		merged[k] = v
	}
	for k, v := range opts.Secrets {
		merged[k] = v
	}
	opts.Secrets = merged
	if err := Check(p, opts); err != nil {
		return err
	}
	obs := opts.Observer
	if obs == nil {
		obs = ObserverFunc(func(Event) {})
	}
	if err := os.MkdirAll(opts.OutputDir, 0o755); err != nil {
		return err
	}
	logPath := opts.LogFile
	if logPath == "" {
		logPath = filepath.Join(opts.OutputDir, p.Image.Name+".log")
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("build log: %w", err)
	}
	defer logFile.Close()
	if abs, err := filepath.Abs(logPath); err == nil {
		logPath = abs
	}

	b := &Build{Plan: p, Options: opts, Stack: &stack.Stack{}, Log: logFile, LogPath: logPath, observer: obs}
	start := time.Now()
	obs.Event(Event{Type: BuildStarted, Time: start, Plan: p.ID, Total: len(p.Steps), LogPath: logPath})

	succeeded := false
	defer func() {
		// Outputs of a failed build are removed: no partial result remains.
		if !succeeded {
			for _, o := range b.outputs {
				os.RemoveAll(o)
			}
		}
		if rerr := b.Stack.Release(ctx); rerr != nil {
			fmt.Fprintf(logFile, "dib: cleanup: %v\n", rerr)
			err = errors.Join(err, fmt.Errorf("cleanup: %w", rerr))
		}
		ev := Event{Type: BuildFinished, Time: time.Now(), Plan: p.ID, Duration: time.Since(start), LogPath: logPath}
		if err != nil {
			ev.Type, ev.Error = BuildFailed, err.Error()
		}
		obs.Event(ev)
	}()

	if err := b.setup(); err != nil {
		return err
	}
	for i := range p.Steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := b.runStep(ctx, i); err != nil {
			return err
		}
	}
	if err := b.teardownChroot(ctx); err != nil {
		return err
	}
	succeeded = true
	return nil
}

// Check refuses, before anything runs, a plan Apply cannot execute: a root
// filesystem provider not available, step kinds without an executor,
// secrets without a value, missing host tools.
func Check(p *plan.Plan, opts Options) error {
	if p == nil {
		return errors.New("no plan")
	}
	var ds diag.Diagnostics
	for i := range p.Steps {
		s := &p.Steps[i]
		switch s.Kind {
		case plan.KindBootstrap:
			if bs := s.Bootstrap; bs != nil && (!bs.Available || (bs.Provider != "mmdebstrap" && bs.Provider != "none")) {
				reason := bs.Reason
				if reason == "" {
					reason = fmt.Sprintf("the %s root-filesystem provider is not available yet", bs.Provider)
				}
				ds = append(ds, diag.Errorf("%s", reason).WithSubject(s.ID).
					WithHint("dib builds Debian and Ubuntu root filesystems today; `dib plan` still shows the whole %s build", bs.Family))
			} else if bs != nil && bs.Provider == "mmdebstrap" {
				if err := rootfs.Available(bs.Family); err != nil {
					ds = ds.Append(err)
				}
			}
		case plan.KindHooks, plan.KindPhase, plan.KindPackages, plan.KindManifest, plan.KindChecksum:
		case plan.KindOutput:
			if s.Output != nil && !treeFormat(s.Output.Format) && opts.OutputWriters[s.Output.Format] == nil && opts.Executors[s.Kind] == nil {
				ds = append(ds, diag.Errorf("output format %q is not supported by this dib runtime yet", s.Output.Format).WithSubject(s.ID))
			}
		default:
			if opts.Executors[s.Kind] == nil {
				ds = append(ds, diag.Errorf("step kind %q (%s) is not supported by this dib runtime yet", s.Kind, s.Title).WithSubject(s.ID))
			}
		}
	}
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	for _, e := range p.Env {
		if !e.Secret {
			continue
		}
		if _, ok := opts.Secrets[e.Name]; ok {
			continue
		}
		if _, ok := p.Secrets[e.Name]; ok {
			continue
		}
		if e.FromEnv != "" && getenv(e.FromEnv) != "" {
			continue
		}
		ds = append(ds, diag.Errorf("secret variable %s has no value", e.Name).WithSubject(e.Name).
			WithHint("secrets are not stored in plans; supply it when applying (%s)", sourceOf(e)))
	}
	if !opts.DryRun {
		// One message for all missing tools, with the one apt-get line.
		cp := *p
		cp.HostTools = append([]plan.HostTool(nil), p.HostTools...)
		if missing := preflight.Check(&cp, nil); len(missing) > 0 {
			e := &preflight.Error{Missing: missing}
			msg, hint, _ := strings.Cut(e.Error(), "\n  hint: ")
			ds = append(ds, diag.Errorf("%s", msg).WithHint("%s (or run dib apply --install-host-tools)", hint))
		}
	}
	if ds.HasErrors() {
		ds.Sort()
		return ds
	}
	return nil
}

func treeFormat(f string) bool {
	switch f {
	case "tar", "tgz", "docker", "aci":
		return true
	}
	return false
}

// setup creates the workspace, the helpers and the environments.
func (b *Build) setup() error {
	o := b.Options
	ws, err := workspace.Create(b.Stack, workspace.Options{WorkDir: o.WorkDir, NoTmpfs: o.NoTmpfs, MinTmpfsGB: o.MinTmpfsGB})
	if err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	b.Workspace = ws
	b.ChrootRoot = ws.TargetRoot
	b.Lib, err = lib.Write(filepath.Join(ws.BuildDir, "dib"), lib.Options{SudoShim: lib.NeedSudoShim()})
	if err != nil {
		return fmt.Errorf("helpers: %w", err)
	}
	host, chrootEnv, secrets, err := composeEnv(b.Plan, o.Getenv, o.Secrets, envLayout{
		Workspace: ws.Env(), HooksPath: ws.HooksPath, LibDir: b.Lib.Lib, BinDir: b.Lib.Bin,
		ImageCache: o.ImageCache, DebugTrace: o.DebugTrace,
		ImagePath:   absPath(b.OutputPath(b.Plan.Image.Name)),
		ManifestDir: absPath(b.OutputPath(b.Plan.Image.Name + ".d")),
	})
	if err != nil {
		return err
	}
	b.HostEnv, b.ChrootEnv = host, chrootEnv
	var allowed []string
	for _, t := range b.Plan.HostTools {
		allowed = append(allowed, t.Program)
	}
	sort.Strings(allowed)
	out := io.Writer(b.Log)
	if o.Console != nil {
		out = io.MultiWriter(o.Console, b.Log)
	}
	b.Shell = &shell.Runner{
		Out:          out,
		Redactor:     shell.NewRedactor(secrets...),
		AllowedTools: allowed,
		DryRun:       o.DryRun,
		Trace:        o.Trace,
	}
	if b.Plan.HostTools == nil {
		b.Shell.AllowedTools = nil
	}
	fmt.Fprintf(b.Log, "dib: plan %s, image %s\ndib: TMP_BUILD_DIR=%s (tmpfs: %v)\n", b.Plan.ID, b.Plan.Image.Name, ws.BuildDir, ws.Tmpfs)
	return nil
}

// runStep runs step i with its events.
func (b *Build) runStep(ctx context.Context, i int) error {
	s := &b.Plan.Steps[i]
	b.step, b.stepIndex = s, i+1
	total := len(b.Plan.Steps)
	start := time.Now()
	b.observer.Event(Event{Type: StepStarted, Time: start, Step: s.ID, Kind: s.Kind, Title: s.Title, Index: i + 1, Total: total, LogPath: b.LogPath})
	fmt.Fprintf(b.Log, "dib: ==> [%d/%d] %s (%s)\n", i+1, total, s.Title, plan.ShortID(s.ID))
	err := b.execute(ctx, s)
	ev := Event{Type: StepFinished, Time: time.Now(), Step: s.ID, Kind: s.Kind, Title: s.Title, Index: i + 1, Total: total, Duration: time.Since(start), LogPath: b.LogPath}
	if err != nil {
		ev.Type, ev.Error = StepFailed, err.Error()
		fmt.Fprintf(b.Log, "dib: step %s failed: %v\n", s.Title, err)
		b.breakpoint(ctx, "after-error", s)
		b.observer.Event(ev)
		return &StepError{Step: s.ID, Kind: s.Kind, Title: s.Title, LogPath: b.LogPath, Err: err}
	}
	b.observer.Event(ev)
	return nil
}

func (b *Build) execute(ctx context.Context, s *plan.Step) error {
	if ex := b.Options.Executors[s.Kind]; ex != nil {
		return ex.Run(ctx, b, s)
	}
	switch s.Kind {
	case plan.KindBootstrap:
		return b.bootstrap(ctx, s)
	case plan.KindHooks:
		return b.writeHooks(s.Hooks)
	case plan.KindPhase:
		return b.runPhase(ctx, s)
	case plan.KindPackages:
		return b.installPackages(ctx, s)
	case plan.KindManifest:
		return b.writeManifests(ctx, s)
	case plan.KindOutput:
		return b.writeOutput(ctx, s)
	case plan.KindChecksum:
		return b.checksum(s)
	}
	return fmt.Errorf("step kind %q has no executor", s.Kind)
}

// OutputPath resolves an output path of the plan against OutputDir.
func (b *Build) OutputPath(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(b.Options.OutputDir, p)
}

// AddOutput records a written output: it is removed if the build fails later.
func (b *Build) AddOutput(path string) { b.outputs = append(b.outputs, path) }

// PrepareChroot mounts what in-chroot steps need in b.ChrootRoot, once.
func (b *Build) PrepareChroot() error {
	if b.chrootOn || b.Options.DryRun {
		return nil
	}
	if err := b.ensureHooks(); err != nil {
		return err
	}
	b.chrootMark = b.Stack.Mark()
	b.chrootOn = true
	c := &chroot.Chroot{Root: b.ChrootRoot, HooksPath: b.Workspace.HooksPath, HostResolvConf: b.Options.HostResolvConf}
	return c.Prepare(b.Stack)
}

// TeardownChroot undoes PrepareChroot (resolv.conf and policy-rc.d back,
// everything unmounted, leftover processes killed).
func (b *Build) TeardownChroot(ctx context.Context) error { return b.teardownChroot(ctx) }

func (b *Build) teardownChroot(ctx context.Context) error {
	if !b.chrootOn {
		return nil
	}
	b.chrootOn = false
	return b.Stack.ReleaseTo(ctx, b.chrootMark)
}

func (b *Build) chroot() *chroot.Chroot {
	return &chroot.Chroot{Root: b.ChrootRoot, HooksPath: b.Workspace.HooksPath}
}

func (b *Build) bootstrap(ctx context.Context, s *plan.Step) error {
	bs := s.Bootstrap
	if bs == nil || bs.Provider == "none" {
		return nil
	}
	return rootfs.Run(ctx, b.Shell, b.Stack, bootstrapOptions(bs, b.Options.ImageCache, b.Workspace.TargetRoot))
}

// bootstrapOptions maps the plan's bootstrap onto mmdebstrap's options; the
// apt cache is per family, suite and architecture under DIB_IMAGE_CACHE.
func bootstrapOptions(bs *plan.Bootstrap, imageCache, target string) rootfs.Options {
	return rootfs.Options{
		Family: bs.Family, Suite: bs.Suite, Mirror: bs.Mirror, Sources: bs.Sources, Components: bs.Components,
		Variant: bs.Variant, Include: bs.Include, Keyrings: bs.Keyrings, Arch: bs.Arch,
		AptCacheDir: filepath.Join(imageCache, "apt", strings.Join([]string{bs.Family, bs.Suite, bs.Arch}, "-")),
		Target:      target,
	}
}

// absPath makes p absolute; scripts run in other directories.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
