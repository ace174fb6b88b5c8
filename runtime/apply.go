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
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/compiler/plan/dibenv"
	"github.com/dibuild/dib/compiler/plan/format"
	"github.com/dibuild/dib/runtime/cache"
	"github.com/dibuild/dib/runtime/cache/remote"
	"github.com/dibuild/dib/runtime/cgroup"
	"github.com/dibuild/dib/runtime/chroot"
	"github.com/dibuild/dib/runtime/ledger"
	"github.com/dibuild/dib/runtime/lib"
	"github.com/dibuild/dib/runtime/lock"
	"github.com/dibuild/dib/runtime/output"
	"github.com/dibuild/dib/runtime/preflight"
	"github.com/dibuild/dib/runtime/qcow2"
	"github.com/dibuild/dib/runtime/rootfs"
	"github.com/dibuild/dib/runtime/safepath"
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
	// fakeAssemble, set only by this package's tests, stands for the
	// partition step's assembly of the disk (assembleDisk, which needs
	// root and loop devices): it leaves an image in b.disk, which the
	// build cache and the disk outputs then handle as any other.
	fakeAssemble func(b *Build, s *plan.Step) error
	// HostResolvConf is copied into the chroot; default /etc/resolv.conf.
	HostResolvConf string
	// Getenv reads the caller's environment; default os.Getenv.
	Getenv func(string) string
	// NoWait fails at once when another build holds the output
	// directory, instead of waiting for it.
	NoWait bool

	// CacheDir is the build cache (runtime/cache); "" builds without one.
	CacheDir string
	// NoCache runs every step (the results are still cached).
	NoCache bool
	// Refresh does not reuse results of steps that talk to a package
	// mirror; CacheMaxAge overrides the plan's cache.max-age (0: the
	// plan's, else 7 days).
	Refresh     bool
	CacheMaxAge time.Duration
	// DibID identifies the dib program in the cache keys; default the
	// sha256 of the running executable (cache.SelfID).
	DibID string
	// HostDpkgStatus is the host's dpkg status file, whose versions of
	// the host tools enter the cache keys; default /var/lib/dpkg/status.
	HostDpkgStatus string
	// Flights is shared by the builds of one process that run at the same
	// time (runtime/fleet): a step several of them need, under the same
	// cache key, runs in one of them while the others wait for its cache
	// entry. Nil: nothing is shared but the cache itself.
	Flights *cache.Flights
	// Slots, shared by the builds of one process, bounds how many of
	// their steps run at once (nil: no bound).
	Slots *Slots
	// OutputDirLocked says the caller holds the output directory's lock
	// and reclaimed it (LockOutputDir), for several builds that write
	// into it at once; Apply then takes neither.
	OutputDirLocked bool
	// CacheFrom is a registry whose entries a step the local cache lacks
	// is pulled from before it would run; CacheTo one the build's entries
	// are pushed to when it succeeded (runtime/cache/remote). Nil: none,
	// except that a nil CacheFrom is the plan's cache.registry unless
	// NoCacheRegistry is set.
	CacheFrom, CacheTo *remote.Remote
	NoCacheRegistry    bool
	// CacheSecretKey, when set, is the key a fleet shares for the cache's
	// digests of secret values (cache.ShareSecretKey), instead of the
	// cache's own: steps that see a secret are then shared too.
	CacheSecretKey []byte
}

// StateDir is dib's directory in an output directory: the build lock and
// the ledgers of running builds.
func StateDir(outputDir string) string { return filepath.Join(outputDir, ".dib") }

// LockPath is the lock file of an output directory.
func LockPath(outputDir string) string { return filepath.Join(StateDir(outputDir), "lock") }

// Build is the state of one Apply.
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
	id                 string
	ledger             *ledger.Ledger
	hooksWritten       bool
	chrootMark         int
	chrootOn           bool
	aptMark            int // the apt cache bind (aptcache.go)
	aptOn              bool
	finalised          bool
	outputs            []string
	// imageOutputs are the outputs that are the finished disk image
	// itself, moved or copied unchanged (addImageOutput).
	imageOutputs map[string]bool
	observer     Observer
	step         *plan.Step
	stepIndex    int
	stepStart    time.Time
	cache        *stepCache        // nil: no build cache
	flight       claim             // the steps this build runs for others too
	aptSlots     map[string]string // apt cache dir -> the copy this build holds (aptSlot)
	disk         diskState         // the disk steps' state (diskstep.go)
	// clusterIndex is the cluster index of the compressed qcow2 output
	// the current step wrote, for its cache entry (qcow2reuse.go).
	clusterIndex *qcow2.Index
	// staged is the build cache's copy of the output the current step
	// wrote, made as it wrote it (nil: none); record adopts or drops it.
	staged *stagedOutput
	// imageSums are the finished image's checksums being computed for the
	// raw output's checksum step (startImageSums); nil: none.
	imageSums *output.Precomputed
	// expected is how long each step took when last built (the cache's
	// records; nil without a cache).
	expected []time.Duration
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

// InterruptedError is a build stopped from outside (a signal cancelled its
// context) during Step; its cleanup ran. Cause is the context's cause,
// e.g. a Signal.
type InterruptedError struct {
	Step    string
	Cause   error
	LogPath string
	Err     error // what the stopped command reported
}

func (e *InterruptedError) Error() string {
	return fmt.Sprintf("build interrupted by %v during step %q; what it made was cleaned up", e.Cause, e.Step)
}

// Unwrap gives the cause (context.Canceled or a Signal).
func (e *InterruptedError) Unwrap() error { return e.Cause }

// Signal is the cause of a build cancelled by a signal (see
// context.WithCancelCause): its error is the signal's name.
type Signal struct{ Name string }

func (s Signal) Error() string { return s.Name }

// Apply executes p. It returns nil when every step succeeded, else a
// *StepError (or diag.Diagnostics for a plan it refuses before starting).
func Apply(ctx context.Context, p *plan.Plan, opts Options) (err error) {
	if p == nil {
		return errors.New("no plan")
	}
	opts = withDefaults(p, opts)
	if err := Check(p, opts); err != nil {
		return err
	}
	obs := imageObserver(opts.Observer, p.Image.Name)
	if err := os.MkdirAll(opts.OutputDir, 0o755); err != nil {
		return err
	}
	if !opts.OutputDirLocked {
		release, err := LockOutputDir(ctx, opts.OutputDir, opts.NoWait, "dib apply of "+p.Image.Name, obs)
		if err != nil {
			return err
		}
		defer release()
	}
	id := buildID()
	ldg, err := ledger.Open(StateDir(opts.OutputDir), id)
	if err != nil {
		return err
	}
	// Closed (deleted) only after the cleanup stack ran: a ledger left
	// behind is the mark of a killed build.
	defer ldg.Close()
	// The outputs' temporary names are in it before any exists: a build
	// whose steps are all cached restores its outputs (.dib-restore-*)
	// before setup.
	for _, pat := range outputTemps(p.Image.Name) {
		if err := ldg.Record(ledger.Entry{Kind: ledger.Glob, Path: opts.OutputDir, Pattern: pat}); err != nil {
			return err
		}
	}
	logPath := opts.LogFile
	if logPath == "" {
		if logPath, err = safepath.Under("build log", opts.OutputDir, p.Image.Name+".log"); err != nil {
			return err
		}
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("build log: %w", err)
	}
	defer logFile.Close()
	if abs, err := filepath.Abs(logPath); err == nil {
		logPath = abs
	}

	b := &Build{Plan: p, Options: opts, Stack: &stack.Stack{}, Log: logFile, LogPath: logPath, observer: obs, id: id, ledger: ldg}
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

	var sc *stepCache
	if opts.CacheDir != "" && !opts.DryRun {
		if sc, err = b.openCache(ctx); err != nil {
			return err
		}
		b.cache = sc
		if sc.dec.NoState {
			done, err := b.restoreAll(sc)
			if err != nil {
				return err
			}
			if done {
				succeeded = true
				if sc.to != nil {
					b.pushAll(ctx, sc)
				}
				return nil
			}
		}
	}
	if err := b.setup(); err != nil {
		return err
	}
	if sc != nil {
		if err := b.Options.Slots.acquire(ctx); err != nil {
			return &InterruptedError{Step: "restore", Cause: err, LogPath: b.LogPath}
		}
		err := b.restoreState(sc)
		b.Options.Slots.release()
		if err != nil {
			return err
		}
	}
	defer b.releaseFlight()
	if err := b.runSteps(ctx, sc); err != nil {
		return err
	}
	if err := b.teardownChroot(ctx); err != nil {
		return err
	}
	succeeded = true
	if sc != nil && sc.to != nil {
		b.pushAll(ctx, sc)
	}
	return nil
}

// withDefaults fills the options Apply's caller left unset: the caller's
// environment, the current directory for outputs, DIB's image cache
// under HOME, the host's dpkg status; the plan's secrets are added to the
// caller's, which win.
func withDefaults(p *plan.Plan, opts Options) Options {
	merged := map[string]string{}
	for k, v := range p.Secrets {
		merged[k] = v
	}
	for k, v := range opts.Secrets {
		merged[k] = v
	}
	opts.Secrets = merged
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
	if opts.HostDpkgStatus == "" {
		opts.HostDpkgStatus = "/var/lib/dpkg/status"
	}
	return opts
}

// imageObserver is obs (none: a no-op) with every event naming the image:
// several builds may share an observer.
func imageObserver(obs Observer, image string) Observer {
	if obs == nil {
		obs = ObserverFunc(func(Event) {})
	}
	next := obs
	return ObserverFunc(func(e Event) {
		if e.Image == "" {
			e.Image = image
		}
		next.Event(e)
	})
}

// runSteps runs the plan's steps in order: with a build cache (sc), the
// steps before the restored state are cached, a step whose outputs the
// cache holds is restored, a step another build of this process runs is
// waited for, and each step that ran is recorded.
func (b *Build) runSteps(ctx context.Context, sc *stepCache) error {
	p := b.Plan
	for i := 0; i < len(p.Steps); {
		if ctx.Err() != nil {
			return &InterruptedError{Step: p.Steps[i].Title, Cause: context.Cause(ctx), LogPath: b.LogPath}
		}
		if sc != nil {
			sd := sc.dec.Steps[i]
			if i < sc.dec.Restore || i == sc.dec.Restore && sc.dec.RestoreScripts == 0 {
				if m := sc.dec.RestoreEntry; i == sc.dec.Restore && len(m.Outputs) > 0 {
					// The restored step's own outputs (the manifests
					// beside the image), unless they are in place.
					if err := b.restoreOutputs(sc, m); err != nil {
						return err
					}
				}
				b.cachedEvent(i, sd.Reason)
				i++
				continue
			}
			if sd.Action == cache.Reuse && !cache.IsState(&p.Steps[i]) {
				err := b.restoreOutputs(sc, sd.Entry)
				if err == nil {
					b.cachedEvent(i, sd.Reason)
					i++
					continue
				}
				if !errors.Is(err, cache.ErrCorrupt) {
					return err
				}
				b.corrupt(sc, sd.Entry, err) // and run it
			}
			// The step runs, unless another build of this process runs it.
			next, run, err := b.share(ctx, sc, i)
			if err != nil {
				return err
			}
			if !run {
				i = next
				continue
			}
		}
		started, nOut := time.Now(), len(b.outputs)
		if sc != nil {
			sc.pkgsBefore = nil
			if p.Steps[i].Mirror {
				sc.pkgsBefore = b.treePackages()
			}
		}
		if err := b.Options.Slots.acquire(ctx); err != nil {
			return &InterruptedError{Step: p.Steps[i].Title, Cause: err, LogPath: b.LogPath}
		}
		started = time.Now() // not counting the wait for a slot
		if err := b.runStep(ctx, i); err != nil {
			b.Options.Slots.release()
			return err
		}
		if sc != nil {
			b.record(ctx, sc, i, started, time.Since(started), nOut)
		}
		b.Options.Slots.release()
		if sc != nil && b.flight.key != "" && b.flight.end == i {
			b.passFlight(sc, i)
		}
		i++
	}
	return nil
}

// restoreAll restores every output of a plan whose outputs are all
// cached; nothing runs. It returns false when an entry was corrupt: the
// caller then builds (a new decision was made).
func (b *Build) restoreAll(sc *stepCache) (bool, error) {
	for i, sd := range sc.dec.Steps {
		if sd.Entry != nil && len(sd.Entry.Outputs) > 0 {
			if err := b.restoreOutputs(sc, sd.Entry); err != nil {
				if !errors.Is(err, cache.ErrCorrupt) {
					return false, err
				}
				b.corrupt(sc, sd.Entry, err)
				sc.decide()
				return false, nil
			}
		}
		b.cachedEvent(i, sd.Reason)
	}
	return true, nil
}

// restoreState restores the decided snapshot into the new workspace; a
// corrupt snapshot is dropped and the next shorter prefix is tried.
func (b *Build) restoreState(sc *stepCache) error {
	for sc.dec.Restore >= 0 {
		m := sc.dec.RestoreEntry
		err := b.restoreSnapshot(sc, m)
		if err == nil {
			return nil
		}
		if !errors.Is(err, cache.ErrCorrupt) {
			return err
		}
		var ce *cache.CorruptError
		if errors.As(err, &ce) {
			m = ce.Entry // a layer's parent, maybe
		}
		b.corrupt(sc, m, err)
		for _, d := range []string{b.Tree(), b.Workspace.HooksPath} {
			if err := emptyDir(d); err != nil {
				return err
			}
		}
		b.hooksWritten, b.finalised = false, false
		sc.mirrorTime, sc.base, sc.baseKey = time.Time{}, nil, ""
		sc.decide()
	}
	return nil
}

// LockOutputDir takes the lock of an output directory, so that outputs
// and logs of two dib commands never mix: a second one waits (or, with
// noWait, fails at once). Holding it, it reclaims what killed builds left
// there. Apply calls it unless Options.OutputDirLocked says the caller did
// (several images built into one directory at once).
func LockOutputDir(ctx context.Context, outputDir string, noWait bool, holder string, obs Observer) (release func(), err error) {
	if obs == nil {
		obs = ObserverFunc(func(Event) {})
	}
	if err := os.MkdirAll(outputDir, 0o755); err != nil {
		return nil, err
	}
	lockPath := LockPath(outputDir)
	lk, err := lock.Acquire(ctx, lockPath, lock.Options{
		NoWait:          noWait,
		RemoveOnRelease: true,
		Holder:          holder,
		Waiting: func(h string) {
			obs.Event(Event{Type: LockWaiting, Time: time.Now(), LockPath: lockPath, Holder: h})
		},
	})
	if err != nil {
		var busy *lock.BusyError
		if errors.As(err, &busy) {
			return nil, diag.Diagnostics{diag.Errorf("output directory %s is in use by %s", outputDir, busy.Holder).
				WithHint("wait for that build, or run this one without --no-wait to wait for it")}
		}
		return nil, err
	}
	// What killed builds left in this output directory goes first.
	if err := reclaim(outputDir, obs); err != nil {
		lk.Release()
		return nil, err
	}
	return func() { lk.Release() }, nil
}

// Check refuses, before anything runs, a plan Apply cannot execute: a root
// filesystem provider not available, step kinds it does not know,
// secrets without a value, missing host tools.
func Check(p *plan.Plan, opts Options) error {
	if p == nil {
		return errors.New("no plan")
	}
	var ds diag.Diagnostics
	// Names that become paths are checked again where they are used
	// (safepath); refusing them here stops the build before it starts.
	if err := safepath.Name("image name", p.Image.Name); err != nil {
		ds = append(ds, diag.Errorf("%v", err).WithSubject("image.name"))
	}
	for i := range p.Steps {
		s := &p.Steps[i]
		switch s.Kind {
		case plan.KindBootstrap:
			if bs := s.Bootstrap; bs != nil && (!bs.Available || !knownProvider(bs)) {
				reason := bs.Reason
				if reason == "" {
					reason = fmt.Sprintf("the %s root-filesystem provider is not available yet", bs.Provider)
				}
				ds = append(ds, diag.Errorf("%s", reason).WithSubject(s.ID).
					WithHint("dib builds Debian and Ubuntu root filesystems (mmdebstrap) and RPM-family ones (dnf, yum-minimal) today; `dib plan` still shows the whole %s build", bs.Family))
			} else if bs != nil && bs.Provider == "mmdebstrap" {
				if err := rootfs.Available(bs.Family); err != nil {
					ds = ds.Append(err)
				}
			}
		case plan.KindHooks, plan.KindPhase, plan.KindPackages, plan.KindManifest, plan.KindChecksum,
			plan.KindImageSize, plan.KindPartition, plan.KindBootloader:
		case plan.KindOutput:
			if s.Output != nil && s.Output.Path != "" {
				dir := opts.OutputDir
				if dir == "" {
					dir = "."
				}
				if _, err := safepath.Under("output path", dir, s.Output.Path); err != nil {
					ds = append(ds, diag.Errorf("%v", err).WithSubject(s.ID))
				}
			}
			if s.Output == nil {
				break
			}
			if _, known := format.Lookup(s.Output.Format); !known {
				ds = append(ds, diag.Errorf("unknown output format %q", s.Output.Format).WithSubject(s.ID).
					WithHint("dib writes %s", strings.Join(format.Names(), ", ")))
			}
		default:
			ds = append(ds, diag.Errorf("step kind %q (%s) is not supported by this dib runtime yet", s.Kind, s.Title).WithSubject(s.ID))
		}
	}
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	for _, e := range p.Env {
		e, ok := e.Input()
		if !ok || !e.Secret {
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
			WithHint("secrets are not stored in plans; supply it when applying: dib apply --secret %s=VALUE or --secret-file %s=PATH (its source: %s)", e.Name, e.Name, sourceOf(e)))
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

// setup creates the workspace, the helpers and the environments.
func (b *Build) setup() error {
	o := b.Options
	// The ledger knows, before they exist, every process, directory and
	// temporary output (recorded by Apply) a killed build could leave (see
	// reclaim).
	marker := "DIB_BUILD_ID=" + b.id
	if err := b.ledger.Record(ledger.Entry{Kind: ledger.Processes, Marker: marker}); err != nil {
		return err
	}
	ws, err := workspace.Create(b.Stack, workspace.Options{WorkDir: o.WorkDir, NoTmpfs: o.NoTmpfs, MinTmpfsGB: o.MinTmpfsGB,
		Record: func(dir string) error { return b.ledger.Record(ledger.Entry{Kind: ledger.Dir, Path: dir}) }})
	if err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	b.Workspace = ws
	b.Lib, err = lib.Write(filepath.Join(ws.BuildDir, "dib"), lib.Options{SudoShim: lib.NeedSudoShim()})
	if err != nil {
		return fmt.Errorf("helpers: %w", err)
	}
	imagePath, err := b.OutputPath(b.Plan.Image.Name)
	if err != nil {
		return err
	}
	manifestDir, err := b.OutputPath(b.Plan.Image.Name + ".d")
	if err != nil {
		return err
	}
	var order []string
	fsType := dibenv.FSType
	for _, e := range b.Plan.Env {
		switch {
		case e.Name == "IMAGE_ELEMENT":
			order = strings.Fields(e.Value)
		case e.Name == "FS_TYPE" && e.Value != "":
			fsType = e.Value
		}
	}
	elementDirs, err := b.writeElementDirs(order)
	if err != nil {
		return fmt.Errorf("element directories: %w", err)
	}
	params, err := b.blockDeviceParams(fsType)
	if err != nil {
		return fmt.Errorf("block-device parameters: %w", err)
	}
	host, chrootEnv, secrets, err := composeEnv(b.Plan, o.Getenv, o.Secrets, envLayout{
		ElementDirs: elementDirs, BlockDeviceParams: params, PythonExec: hostPython(),
		BuiltinElements: filepath.Join(ws.BuildDir, plan.ElementsDir),
		Workspace:       ws.Env(), HooksPath: ws.HooksPath, LibDir: b.Lib.Lib, BinDir: b.Lib.Bin,
		ImageCache: o.ImageCache, DebugTrace: o.DebugTrace,
		ImagePath:   absPath(imagePath),
		ManifestDir: absPath(manifestDir),
		NoTmpfs:     !ws.Tmpfs, MinTmpfsGB: o.MinTmpfsGB, Home: o.Getenv("HOME"),
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
	cg, err := b.cgroup()
	if err != nil {
		return err
	}
	b.Shell = &shell.Runner{
		Out:          out,
		Redactor:     shell.NewRedactor(secrets...),
		AllowedTools: allowed,
		DryRun:       o.DryRun,
		Trace:        o.Trace,
		Marker:       marker,
		Cgroup:       cg,
	}
	// Whatever the build's commands leave running (a daemon in its own
	// session, even one with a cleared environment) is killed before the
	// workspace goes.
	b.Stack.Push("kill processes left by the build", func(context.Context) error {
		err := shell.KillMarked(marker)
		if cg != nil {
			err = errors.Join(err, cg.Close())
		}
		return err
	})
	if b.Plan.HostTools == nil {
		b.Shell.AllowedTools = nil
	}
	fmt.Fprintf(b.Log, "dib: plan %s, image %s\ndib: TMP_BUILD_DIR=%s (tmpfs: %v)\n", b.Plan.ID, b.Plan.Image.Name, ws.BuildDir, ws.Tmpfs)
	return nil
}

// cgroup creates the build's cgroup, recorded in the ledger first, or
// returns nil where the host has no writable cgroup v2 hierarchy (the
// build then finds its processes by their environment marker only, which
// a process that clears its environment escapes; the log says so).
func (b *Build) cgroup() (*cgroup.Group, error) {
	path, err := cgroup.PathFor("dib-" + b.id)
	if err == nil {
		if err := b.ledger.Record(ledger.Entry{Kind: ledger.Cgroup, Path: path}); err != nil {
			return nil, err
		}
		var g *cgroup.Group
		if g, err = cgroup.Create(path); err == nil {
			return g, nil
		}
	}
	fmt.Fprintf(b.Log, "dib: %v: processes are found by their environment marker only\n", err)
	return nil, nil
}

// runStep runs step i with its events.
func (b *Build) runStep(ctx context.Context, i int) error {
	s := &b.Plan.Steps[i]
	b.step, b.stepIndex = s, i+1
	total := len(b.Plan.Steps)
	start := time.Now()
	b.stepStart = start
	started := Event{Type: StepStarted, Time: start, Step: s.ID, Kind: s.Kind, Title: s.Title, Index: i + 1, Total: total, LogPath: b.LogPath}
	if i < len(b.expected) {
		started.Expected = b.expected[i]
	}
	b.observer.Event(started)
	fmt.Fprintf(b.Log, "dib: ==> [%d/%d] %s (%s)\n", i+1, total, s.Title, plan.ShortID(s.ID))
	err := b.execute(ctx, s)
	ev := Event{Type: StepFinished, Time: time.Now(), Step: s.ID, Kind: s.Kind, Title: s.Title, Index: i + 1, Total: total, Duration: time.Since(start), LogPath: b.LogPath}
	if err != nil {
		ev.Type, ev.Error = StepFailed, err.Error()
		fmt.Fprintf(b.Log, "dib: step %s failed: %v\n", s.Title, err)
		b.breakpoint(ctx, "after-error", s)
		b.observer.Event(ev)
		if ctx.Err() != nil {
			// Stopped from outside: say so, not what the killed command
			// reported ("exit status -1").
			return &InterruptedError{Step: s.Title, Cause: context.Cause(ctx), LogPath: b.LogPath, Err: err}
		}
		return &StepError{Step: s.ID, Kind: s.Kind, Title: s.Title, LogPath: b.LogPath, Err: err}
	}
	b.observer.Event(ev)
	return nil
}

func (b *Build) execute(ctx context.Context, s *plan.Step) error {
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
	case plan.KindImageSize:
		return b.diskImageSize(ctx, s)
	case plan.KindPartition:
		if b.Options.fakeAssemble != nil {
			return b.Options.fakeAssemble(b, s)
		}
		return b.assembleDisk(ctx, s)
	case plan.KindBootloader:
		return b.installBootloader(ctx, s)
	}
	return fmt.Errorf("step kind %q has no executor", s.Kind)
}

// OutputPath resolves an output path of the plan in OutputDir, refusing
// one that is absolute or would lead out of it.
func (b *Build) OutputPath(p string) (string, error) {
	return safepath.Under("output path", b.Options.OutputDir, p)
}

// Creating enters an output path in the build's ledger; call it before
// the file is written, so a killed build's partial result is reclaimed.
func (b *Build) Creating(path string) error {
	return b.ledger.Record(ledger.Entry{Kind: ledger.File, Path: path})
}

// outputTemps are the names of the temporary files output writers make
// in the output directory (output.Atomic, tgz, docker, aci, cache
// restores), as glob patterns.
func outputTemps(name string) []string {
	return []string{"." + name + ".*dibtmp-*", ".dib-tgz-tar-*", ".dib-docker-tree-*", ".dib-docker-layer-*", ".aci-manifest-*", ".dib-restore-*"}
}

// reclaim undoes what killed builds recorded in the output directory's
// ledgers and reports it as an event.
func reclaim(outputDir string, obs Observer) error {
	lefts, err := ledger.Reclaim(StateDir(outputDir))
	if err != nil {
		return fmt.Errorf("reclaiming what killed builds left: %w", err)
	}
	for _, l := range lefts {
		ev := Event{Type: Reclaimed, Time: time.Now(), Build: l.Build, Reclaimed: l.Reclaimed}
		if len(l.Errors) > 0 {
			ev.Error = errors.Join(l.Errors...).Error()
		}
		obs.Event(ev)
	}
	return nil
}

// Reclaim is `dib clean`: with the output directory's lock, it undoes
// what killed builds left and reports it to obs.
func Reclaim(ctx context.Context, outputDir string, noWait bool, obs Observer) error {
	release, err := LockOutputDir(ctx, outputDir, noWait, "dib clean", obs)
	if err != nil {
		return err
	}
	release()
	return nil
}

// AddOutput records a written output: it is removed if the build fails later.
func (b *Build) AddOutput(path string) { b.outputs = append(b.outputs, path) }

// addImageOutput records an output that is the disk image finishImage
// returned (or useImage took), moved or copied unchanged: the raw output.
// The build cache then keeps it as the disk snapshot's payload instead of
// writing the same bytes again.
func (b *Build) addImageOutput(path string) {
	if b.imageOutputs == nil {
		b.imageOutputs = map[string]bool{}
	}
	b.imageOutputs[path] = true
	b.AddOutput(path)
}

// Tree is the image tree every phase works on: TMP_MOUNT_PATH, as in DIB
// (workspace.Workspace.Tree). The partition step replaces its content with the
// mounted image after post-root.d; its path never changes.
func (b *Build) Tree() string { return b.Workspace.Tree() }

// PrepareChroot mounts what in-chroot steps need in the tree, once.
func (b *Build) PrepareChroot() error {
	if b.chrootOn || b.Options.DryRun {
		return nil
	}
	if err := b.ensureHooks(); err != nil {
		return err
	}
	b.chrootMark = b.Stack.Mark()
	b.chrootOn = true
	c := &chroot.Chroot{Root: b.Tree(), HooksPath: b.Workspace.HooksPath, HostResolvConf: b.Options.HostResolvConf}
	if err := c.Prepare(b.Stack); err != nil {
		return err
	}
	return b.bindAptCache()
}

// TeardownChroot undoes PrepareChroot (resolv.conf and policy-rc.d back,
// everything unmounted, leftover processes killed) and unbinds the apt
// cache: the tree is then what the image gets.
func (b *Build) TeardownChroot(ctx context.Context) error { return b.teardownChroot(ctx) }

func (b *Build) teardownChroot(ctx context.Context) error {
	if !b.chrootOn && !b.aptOn {
		return nil
	}
	mark := b.Stack.Mark()
	if b.chrootOn {
		mark = min(mark, b.chrootMark)
	}
	if b.aptOn {
		mark = min(mark, b.aptMark)
	}
	b.chrootOn, b.aptOn = false, false
	return b.Stack.ReleaseTo(ctx, mark)
}

func (b *Build) chroot() *chroot.Chroot {
	return &chroot.Chroot{Root: b.Tree(), HooksPath: b.Workspace.HooksPath}
}

func (b *Build) bootstrap(ctx context.Context, s *plan.Step) error {
	bs := s.Bootstrap
	if bs == nil || bs.Provider == "none" {
		return nil
	}
	if bs.Provider == "dnf" {
		return b.bootstrapDNF(ctx, bs)
	}
	o, err := bootstrapOptions(bs, b.Options.ImageCache, b.Tree())
	if err != nil {
		return err
	}
	if o.AptCacheDir, err = b.aptSlot(o.AptCacheDir); err != nil {
		return err
	}
	o.TmpDir = filepath.Join(b.Workspace.BuildDir, "tmp")
	return rootfs.Run(ctx, b.Shell, b.Stack, o)
}

// bootstrapOptions maps the plan's bootstrap onto mmdebstrap's options; the
// apt cache is per family, suite and architecture under DIB_IMAGE_CACHE
// (one directory, whatever the release says).
func bootstrapOptions(bs *plan.Bootstrap, imageCache, target string) (rootfs.Options, error) {
	cache, err := aptCacheDir(bs, imageCache)
	if err != nil {
		return rootfs.Options{}, err
	}
	return rootfs.Options{
		Family: bs.Family, Suite: bs.Suite, Mirror: bs.Mirror, Sources: bs.Sources, Components: bs.Components,
		Variant: bs.Variant, Include: bs.Include, Keyrings: bs.Keyrings, ExtraArgs: bs.ExtraArgs, Arch: bs.Arch,
		AptCacheDir: cache,
		Target:      target,
	}, nil
}

// buildID is a random name for one build.
func buildID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// absPath makes p absolute; scripts run in other directories.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
