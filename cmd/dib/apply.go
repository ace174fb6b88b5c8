package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/internal/progress"
	"github.com/dibuild/dib/runtime"
	"github.com/dibuild/dib/runtime/cache"
	"github.com/dibuild/dib/runtime/cache/remote"
	"github.com/dibuild/dib/runtime/ns"
	"github.com/dibuild/dib/runtime/phase"
	"github.com/dibuild/dib/runtime/preflight"
	"github.com/dibuild/dib/spec/diag"
	"golang.org/x/sys/unix"
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
	Verbose    bool     `short:"v" help:"Show the scripts' output: on a terminal the last 10 lines of the running step's under its progress line, elsewhere every line, prefixed element/script |."`
	DryRun     bool     `name:"dry-run" help:"Print the commands instead of running them."`
	Trace      bool     `short:"x" help:"Print each command before running it."`
	Secret     []string `name:"secret" placeholder:"NAME=VALUE" help:"The value of the plan's secret variable NAME (repeatable). Secrets are never stored in plans; a plan file needs them here or in their from-env variable."`
	SecretFile []string `name:"secret-file" placeholder:"NAME=PATH" help:"Read the value of secret variable NAME from the file PATH (one trailing newline dropped)."`
	NoWait     bool     `name:"no-wait" help:"Fail at once if another build is using the output directory, instead of waiting for it."`
	Install    bool     `name:"install-host-tools" help:"apt-get install the Debian packages of the host tools the plan needs and this machine lacks, before building."`
	Jobs       int      `name:"jobs" short:"j" placeholder:"N" help:"Run at most N steps at once across the images of a multi-image Dibfile, with up to 2N images in progress (fewer when the available memory is short, each build's tmpfs counted); -j 1 builds one image after another (default: as many steps as the cores and the available memory allow)."`
	FailFast   bool     `name:"fail-fast" help:"With several images, stop the other builds as soon as one fails (by default they go on)."`
	CacheFlags
	NoCache bool `name:"no-cache" help:"Run every step, even those the build cache holds (their results are cached again)."`
	Refresh bool `help:"Do not reuse cached results of steps that download from a package mirror (as if cache.max-age had passed)."`
	RegistryFlags
	CacheTo string `name:"cache-to" placeholder:"REGISTRY/REPO" help:"Push the build's cache entries to this OCI registry repository when it succeeds (steps that see a secret are never pushed)."`
}

// RegistryFlags choose the registry cached steps are pulled from, and the
// fleet's key for secrets in cache keys (dib apply, dib plan).
type RegistryFlags struct {
	CacheFrom      string `name:"cache-from" placeholder:"REGISTRY/REPO" env:"DIB_CACHE_REGISTRY" help:"Pull the cached steps the local cache lacks from this OCI registry repository (dib plan shows them as cached; http://HOST:PORT/REPO: plain HTTP; off: none, not even the Dibfile's cache.registry). Default the Dibfile's cache.registry."`
	CacheSecretKey string `name:"cache-secret-key" placeholder:"FILE" env:"DIB_CACHE_SECRET_KEY_FILE" help:"A key (at least 32 bytes) the machines sharing a registry cache all hold: secret values are digested with it in cache keys, and steps that see a secret are pushed too (docs/cache.md)."`
}

// from opens the registry of --cache-from (nil: none given, or off).
func (r RegistryFlags) from() (*remote.Remote, error) {
	if r.CacheFrom == "" || r.CacheFrom == "off" {
		return nil, nil
	}
	from, err := remote.Open(r.CacheFrom)
	if err != nil {
		return nil, fmt.Errorf("--cache-from: %w", err)
	}
	return from, nil
}

// CacheFlags choose the build cache.
type CacheFlags struct {
	CacheDir string `name:"cache-dir" placeholder:"DIR" env:"DIB_CACHE_DIR" help:"The build cache of step results (default ~/.cache/dib; off: none)."`
}

// dir returns the cache directory: the flag, or ~/.cache/dib; "" for off.
func (c CacheFlags) dir() string {
	if c.CacheDir == "off" {
		return ""
	}
	if c.CacheDir != "" {
		return c.CacheDir
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		home = "/root"
	}
	return filepath.Join(home, ".cache", "dib")
}

// remotes opens the registries of --cache-from and --cache-to.
func (c ApplyCmd) remotes() (from, to *remote.Remote, err error) {
	if c.CacheFlags.dir() == "" && (c.CacheFrom != "" && c.CacheFrom != "off" || c.CacheTo != "") {
		return nil, nil, errors.New("--cache-from and --cache-to need a local build cache (not --cache-dir off): entries pass through it")
	}
	if from, err = c.RegistryFlags.from(); err != nil {
		return nil, nil, err
	}
	if c.CacheTo != "" {
		if to, err = remote.Open(c.CacheTo); err != nil {
			return nil, nil, fmt.Errorf("--cache-to: %w", err)
		}
	}
	return from, to, nil
}

// secretKey reads the file of --cache-secret-key (nil: none).
func (c RegistryFlags) secretKey() ([]byte, error) {
	if c.CacheSecretKey == "" {
		return nil, nil
	}
	b, err := os.ReadFile(c.CacheSecretKey)
	if err != nil {
		return nil, fmt.Errorf("--cache-secret-key: %w", err)
	}
	b = []byte(strings.TrimSpace(string(b)))
	if len(b) < cache.MinSharedKey {
		return nil, fmt.Errorf("--cache-secret-key %s: %d bytes; the key needs at least %d (e.g. head -c 32 /dev/urandom | base64 > FILE)", c.CacheSecretKey, len(b), cache.MinSharedKey)
	}
	return b, nil
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
			return needRoot(g, "'dib plan' or 'dib apply --dry-run'")
		}
		if parent, err := privateNamespace(g); parent || err != nil {
			return err
		}
	}
	ctx, stop := signalContext()
	defer stop()

	plans, err := loadPlans(g, c.File, c.PlanInput)
	if err != nil {
		return err
	}
	secrets, err := secretValues(plans, c.Secret, c.SecretFile)
	if err != nil {
		_ = diag.Diagnostics{diag.Errorf("%v", err).WithHint("give --secret NAME=VALUE or --secret-file NAME=PATH for a secret variable of the plan")}.WriteText(g.Stderr)
		return exitError{code: exitUsage}
	}
	view := progressView{plain: c.DryRun || c.Trace || len(c.Break) > 0, verbose: c.Verbose || c.DryRun || c.Trace, json: c.JSON}
	var secretKey []byte
	from, to, err := c.remotes()
	if err == nil {
		secretKey, err = c.secretKey()
	}
	if err != nil {
		_ = diag.Diagnostics{diag.Errorf("%v", err)}.WriteText(g.Stderr)
		return exitError{code: exitUsage}
	}
	opts := runtime.Options{
		OutputDir: c.OutputDir, WorkDir: c.WorkDir, ImageCache: c.ImageCache,
		NoTmpfs: c.NoTmpfs || c.DryRun, MinTmpfsGB: c.MinTmpfs, LogFile: c.LogFile,
		DryRun: c.DryRun, Trace: c.Trace, Break: c.Break, NoWait: c.NoWait,
		CacheDir: c.CacheFlags.dir(), NoCache: c.NoCache, Refresh: c.Refresh,
		Secrets: secrets, CacheFrom: from, CacheTo: to, NoCacheRegistry: c.CacheFrom == "off", CacheSecretKey: secretKey,
	}
	if len(plans) > 1 {
		g.observe(view, &opts)
		return c.buildImages(ctx, g, plans, opts)
	}
	return buildPlans(ctx, g, plans, opts, c.Install && !c.DryRun, view)
}

// buildPlans builds each plan in turn, showing its progress as view says;
// the first failure ends the command with exit 1, after its diagnostics.
func buildPlans(ctx context.Context, g *Globals, plans []*plan.Plan, opts runtime.Options, install bool, view progressView) error {
	for _, p := range plans {
		g.observe(view, &opts) // a new drawing for each image
		if install {
			if err := installHostTools(ctx, g, p); err != nil {
				return err
			}
		}
		err := runtime.Apply(ctx, p, opts)
		if t, ok := opts.Observer.(*progress.Terminal); ok {
			t.Close() // the drawing ends before anything else is written
		}
		if err != nil {
			renderApplyError(g, err)
			return exitError{code: exitFailed}
		}
	}
	return nil
}

// signalContext is cancelled by SIGINT, SIGTERM or SIGHUP, with the
// signal as its cause, so an interrupted build can say what stopped it.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			name := s.String()
			if n, ok := s.(syscall.Signal); ok {
				name = unix.SignalName(n)
			}
			cancel(runtime.Signal{Name: name})
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel(nil)
	}
}

// progressView says how a build shows its progress.
type progressView struct {
	plain   bool // plain lines even on a terminal (--dry-run, -x, breakpoints)
	verbose bool // the scripts' output too (-v)
	json    bool // JSON events on stdout (--json)
}

// tailLines is how many lines of the running step's output -v shows
// under it on a terminal.
const tailLines = 10

// observe sets how a build shows its progress (opts.Observer) and where
// its scripts' output goes (opts.Console). On stderr: live on a terminal
// (the running step, its script, elapsed time against the last build's,
// and with -v the last lines of its output under it); plain lines, and
// with -v every line of output, when stderr is not a terminal, when TERM
// is dumb, or when view.plain says so.
func (g *Globals) observe(view progressView, opts *runtime.Options) {
	opts.Console = nil
	if view.verbose {
		opts.Console = g.Stderr
	}
	term, _ := g.lookupEnv("TERM")
	switch {
	case view.json:
		opts.Observer = progress.JSON(g.Stdout)
	case view.plain || term == "dumb" || !isTerminal(g.Stderr):
		opts.Observer = progress.Text(g.Stderr)
	case view.verbose:
		t := progress.NewTerminal(g.Stderr, 0, tailLines)
		opts.Observer, opts.Console = t, t.Output("")
	default:
		opts.Observer = progress.NewTerminal(g.Stderr, 0, 0)
	}
}

// privateNamespace runs the rest of the command in a private mount
// namespace (ns.Enter), so no mount of it outlives dib, even killed. In the
// parent, whose re-executed child ran the command, it returns parent=true
// and the child's exit status as the error (nil for 0): return it.
func privateNamespace(g *Globals) (parent bool, err error) {
	parent, code, err := ns.Enter(context.Background(), ns.Options{Stdout: g.Stdout, Stderr: g.Stderr})
	if err == nil && code != 0 {
		err = exitError{code: code}
	}
	return parent, err
}

// needRoot reports, for a build, that dib is not root, with a hint.
func needRoot(g *Globals, preview string) error {
	_ = diag.Diagnostics{diag.Errorf("building needs root: dib mounts filesystems and chroots into the image").
		WithHint("run it with sudo, or preview the build with %s", preview)}.WriteText(g.Stderr)
	return exitError{code: exitFailed}
}

// secretValues parses --secret NAME=VALUE and --secret-file NAME=PATH;
// each NAME must be a secret variable of one of the plans.
func secretValues(plans []*plan.Plan, inline, files []string) (map[string]string, error) {
	known := map[string]bool{}
	for _, p := range plans {
		for _, e := range p.Env {
			if e.Secret {
				known[e.Name] = true
			}
		}
	}
	out := map[string]string{}
	add := func(flag, arg string, read bool) error {
		name, val, ok := strings.Cut(arg, "=")
		if !ok || name == "" {
			return fmt.Errorf("%s %q: want NAME=%s", flag, arg, map[bool]string{false: "VALUE", true: "PATH"}[read])
		}
		if !known[name] {
			return fmt.Errorf("%s %s: the plan has no secret variable %s", flag, name, name)
		}
		if read {
			b, err := os.ReadFile(val)
			if err != nil {
				return fmt.Errorf("%s %s: %w", flag, name, err)
			}
			val = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		}
		out[name] = val
		return nil
	}
	for _, a := range inline {
		if err := add("--secret", a, false); err != nil {
			return nil, err
		}
	}
	for _, a := range files {
		if err := add("--secret-file", a, true); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// renderApplyError prints why a build failed as diagnostics.
func renderApplyError(g *Globals, err error) { renderImageError(g, "", err) }

// renderImageError prints why the build of an image failed; image, when
// set, starts each message.
func renderImageError(g *Globals, image string, err error) {
	var ds diag.Diagnostics
	var pe *phase.Error
	var se *runtime.StepError
	var ie *runtime.InterruptedError
	switch {
	case errors.As(err, &ie):
		d := diag.Errorf("%v", ie)
		if ie.LogPath != "" {
			d = d.WithHint("the output up to then is in %s", ie.LogPath)
		}
		ds = diag.Diagnostics{d}
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
	if image != "" {
		ds = append(diag.Diagnostics(nil), ds...)
		for i := range ds {
			ds[i].Message = "image " + image + ": " + ds[i].Message
		}
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
