package main

import (
	"github.com/dibuild/dib/internal/progress"
	"github.com/dibuild/dib/runtime"
	"github.com/dibuild/dib/spec/diag"
)

// CleanCmd reclaims what killed builds left.
type CleanCmd struct {
	OutputDir string `name:"output-dir" short:"O" default:"." placeholder:"DIR" help:"The output directory of the builds to clean up after."`
	NoWait    bool   `name:"no-wait" help:"Fail at once if a build is using the output directory, instead of waiting for it."`
	JSON      bool   `help:"Report as JSON events, one per line, on stdout."`
}

// Help is shown by `dib clean --help`.
func (CleanCmd) Help() string {
	return `Every build records in its output directory (.dib/ledger/) what it is about
to create: work directories, temporary outputs, outputs, its processes. A
build that ends, well or not, cleans up and deletes its record; one killed
(SIGKILL, OOM) leaves it. 'dib clean' reclaims what such builds left: it
kills their processes, detaches loop devices over their files, unmounts and
removes their directories, temporary and partial outputs and half-written
build-cache entries, and says what it did. The
next 'dib apply' into the same directory does the same before it starts.

Examples:
  sudo dib clean
  sudo dib clean -O out/`
}

// Run reclaims, holding the output directory's lock.
func (c CleanCmd) Run(g *Globals) error {
	var obs runtime.Observer = progress.Text(g.Stderr)
	if c.JSON {
		obs = progress.JSON(g.Stdout)
	}
	n := 0
	count := runtime.ObserverFunc(func(e runtime.Event) {
		if e.Type == runtime.Reclaimed {
			n++
		}
		obs.Event(e)
	})
	ctx, stop := signalContext()
	defer stop()
	if err := runtime.Reclaim(ctx, c.OutputDir, c.NoWait, count); err != nil {
		_ = diag.Diagnostics{diag.Errorf("%v", err)}.WriteText(g.Stderr)
		return exitError{code: exitFailed}
	}
	if n == 0 && !c.JSON {
		_, _ = g.Stderr.Write([]byte("==> nothing to clean up in " + c.OutputDir + "\n"))
	}
	return nil
}
