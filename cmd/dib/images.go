package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/internal/progress"
	dibrt "github.com/dibuild/dib/runtime"
	"github.com/dibuild/dib/runtime/cache"
	"github.com/dibuild/dib/runtime/parallel"
	"github.com/dibuild/dib/runtime/workspace"
	"github.com/dibuild/dib/spec/diag"
)

// buildImages builds the images of a multi-image Dibfile at once (-j),
// into one output directory, with one build cache whose shared steps run
// once; then it prints a summary table and the failures' diagnostics.
func (c ApplyCmd) buildImages(ctx context.Context, g *Globals, plans []*plan.Plan, opts dibrt.Options) error {
	if opts.LogFile != "" {
		return usage(g, fmt.Errorf("--logfile names one file; with several images each build's log is OUTPUT-DIR/IMAGE.log"))
	}
	if c.Install && !c.DryRun {
		for _, p := range plans { // one apt-get at a time
			if err := installHostTools(ctx, g, p); err != nil {
				return err
			}
		}
	}
	meminfo, _ := os.ReadFile("/proc/meminfo")
	tmpfs := workspace.UseTmpfs(workspace.MemTotalKB(meminfo), opts.NoTmpfs, opts.MinTmpfsGB)
	jobs := c.Jobs
	if jobs <= 0 {
		jobs = parallel.DefaultJobs(len(plans), runtime.NumCPU(), parallel.MemAvailableKB(meminfo), tmpfs, opts.MinTmpfsGB)
	}
	if len(opts.Break) > 0 {
		jobs = 1 // one interactive shell at a time
	}
	builds := parallel.DefaultBuilds(len(plans), jobs, parallel.MemAvailableKB(meminfo), tmpfs, opts.MinTmpfsGB)
	// Every line names its image: the terminal's, or plain lines.
	obs := opts.Observer
	term, _ := obs.(*progress.Terminal)
	switch {
	case term != nil:
		term.ShowImages()
	case !c.JSON:
		obs = progress.ImagesText(g.Stderr)
	}
	names := make([]string, len(plans))
	for i, p := range plans {
		names[i] = p.Image.Name
	}
	release, err := dibrt.LockOutputDir(ctx, opts.OutputDir, opts.NoWait, "dib apply of "+strings.Join(names, ", "), obs)
	if err != nil {
		if term != nil {
			term.Close()
		}
		renderApplyError(g, err)
		return exitError{code: exitFailed}
	}
	defer release()
	opts.OutputDirLocked = true
	opts.Flights = &cache.Flights{}
	opts.Slots = dibrt.NewSlots(jobs)
	var consoleMu sync.Mutex
	if c.Verbose || c.DryRun || c.Trace {
		fmt.Fprintf(g.Stderr, "==> building %d images, %d steps at a time (%d images in progress): %s\n", len(plans), jobs, builds, strings.Join(names, ", "))
	}
	results := parallel.Run(ctx, plans, parallel.Options{Builds: builds, FailFast: c.FailFast, Observer: obs},
		func(ctx context.Context, p *plan.Plan, obs dibrt.Observer) error {
			o := opts
			o.Observer = obs
			switch {
			case o.Console != nil && term != nil: // -v: the last lines under the image's step
				o.Console = term.Output(p.Image.Name)
			case o.Console != nil:
				o.Console = &linePrefixer{w: o.Console, mu: &consoleMu, prefix: "[" + p.Image.Name + "] "}
			}
			return dibrt.Apply(ctx, p, o)
		})
	if term != nil {
		term.Close() // the drawing ends before the summary
	}
	fmt.Fprintln(g.Stderr)
	_ = parallel.WriteSummary(g.Stderr, results)
	for _, r := range results {
		if r.Status == parallel.Failed {
			renderImageError(g, r.Image, r.Err)
		}
	}
	if parallel.AnyFailed(results) {
		if ctx.Err() != nil && !c.FailFast {
			_ = diag.Diagnostics{diag.Errorf("interrupted by %v", context.Cause(ctx))}.WriteText(g.Stderr)
		}
		return exitError{code: exitFailed}
	}
	return nil
}

// linePrefixer starts every line written to w with prefix; lines of
// several writers sharing mu never mix.
type linePrefixer struct {
	w      io.Writer
	mu     *sync.Mutex
	prefix string
	buf    []byte
}

func (l *linePrefixer) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, b...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		if _, err := io.WriteString(l.w, l.prefix+string(l.buf[:i+1])); err != nil {
			return 0, err
		}
		l.buf = l.buf[i+1:]
	}
	return len(b), nil
}
