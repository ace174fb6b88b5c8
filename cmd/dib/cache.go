package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/runtime/cache"
	"github.com/dibuild/dib/spec"
)

// CacheCmd manages the build cache.
type CacheCmd struct {
	Ls     CacheLsCmd     `cmd:"" help:"List the entries: which plan step each serves, its size and age."`
	Prune  CachePruneCmd  `cmd:"" help:"Remove entries unused for a while, or the least recently used beyond a size."`
	Verify CacheVerifyCmd `cmd:"" help:"Recompute every entry's digests; drop the corrupt ones."`
}

// CacheLsCmd lists the cache.
type CacheLsCmd struct {
	CacheFlags
	Packages bool `help:"After the table, the packages (name=version) each entry of a step that talks to a package mirror installed."`
}

// Run lists the entries, oldest use first.
func (c CacheLsCmd) Run(g *Globals) error {
	cc, err := cache.OpenExisting(c.dir())
	if err != nil {
		return err
	}
	if cc == nil {
		fmt.Fprintf(g.Stdout, "the build cache %s is empty\n", c.dir())
		return nil
	}
	list, err := cc.List()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(g.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tIMAGE\tSTEP\tHOLDS\tSIZE\tCREATED\tUSED")
	var total int64
	now := time.Now()
	for _, m := range list {
		holds := "record"
		switch {
		case m.Snapshot != nil && m.Snapshot.Parent != "":
			holds = "layer on " + plan.ShortID(m.Snapshot.Parent)
		case m.Snapshot != nil:
			holds = "snapshot"
		case len(m.Outputs) > 0:
			holds = "outputs"
		}
		if len(m.Packages) > 0 {
			holds += fmt.Sprintf(", %d packages", len(m.Packages))
		}
		step := fmt.Sprintf("%d. %s (%s)", m.Index, m.Title, plan.ShortID(m.Step))
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s ago\t%s ago\n", plan.ShortID(m.Key), m.Image, step, holds,
			human(m.Size()), cache.Age(now.Sub(m.Created)), cache.Age(now.Sub(cc.LastUsed(m.Key))))
		total += m.Size()
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "%d entries, %s in %s\n", len(list), human(total), c.dir())
	if c.Packages {
		for _, m := range list {
			if len(m.Packages) > 0 {
				fmt.Fprintf(g.Stdout, "\n%s %d. %s, installed from the mirror %s ago:\n  %s\n", plan.ShortID(m.Key), m.Index, m.Title,
					cache.Age(now.Sub(m.MirrorTime)), strings.Join(m.Packages, " "))
			}
		}
	}
	return nil
}

// CachePruneCmd bounds the cache.
type CachePruneCmd struct {
	CacheFlags
	MaxSize   string `name:"max-size" placeholder:"SIZE" help:"Remove the least recently used entries until the cache holds at most SIZE (e.g. 20GiB)."`
	OlderThan string `name:"older-than" placeholder:"AGE" help:"Remove entries unused for longer than AGE (e.g. 7d, 12h)."`
}

// Run prunes under the cache's lock.
func (c CachePruneCmd) Run(g *Globals) error {
	var maxSize int64
	var olderThan time.Duration
	var err error
	if c.MaxSize != "" {
		if maxSize, err = spec.ParseSize(c.MaxSize); err != nil {
			return usage(g, fmt.Errorf("--max-size: %w", err))
		}
	}
	if c.OlderThan != "" {
		if olderThan, err = spec.ParseAge(c.OlderThan); err != nil {
			return usage(g, fmt.Errorf("--older-than: %w", err))
		}
	}
	cc, err := lockedCache(g, c.dir())
	if err != nil || cc == nil {
		return err
	}
	defer cc.Unlock()
	removed, err := cc.Prune(maxSize, olderThan, time.Now())
	var freed int64
	for _, m := range removed {
		freed += m.Size()
	}
	fmt.Fprintf(g.Stdout, "removed %d entries, %s\n", len(removed), human(freed))
	return err
}

// CacheVerifyCmd checks every entry.
type CacheVerifyCmd struct {
	CacheFlags
}

// Run verifies every entry; corrupt ones are reported and dropped, and
// the command fails when it found any.
func (c CacheVerifyCmd) Run(g *Globals) error {
	cc, err := lockedCache(g, c.dir())
	if err != nil || cc == nil {
		return err
	}
	defer cc.Unlock()
	list, err := cc.List()
	if err != nil {
		return err
	}
	bad := 0
	for _, m := range list {
		verr := cc.Verify(m)
		if m.Step == "" {
			verr = fmt.Errorf("%w: unreadable record", cache.ErrCorrupt)
		}
		if verr == nil {
			continue
		}
		bad++
		fmt.Fprintf(g.Stderr, "corrupt: %s (%s, step %q): %v; dropped\n", plan.ShortID(m.Key), m.Image, m.Title, verr)
		if err := cc.Drop(m.Key); err != nil {
			return err
		}
	}
	fmt.Fprintf(g.Stdout, "verified %d entries, %d corrupt (dropped)\n", len(list), bad)
	if bad > 0 {
		return exitError{code: exitFailed}
	}
	return nil
}

// lockedCache opens and locks an existing cache, saying when it waits.
func lockedCache(g *Globals, dir string) (*cache.Cache, error) {
	if ex, err := cache.OpenExisting(dir); err != nil || ex == nil {
		if err == nil {
			fmt.Fprintf(g.Stdout, "the build cache %s is empty\n", dir)
		}
		return nil, err
	}
	cc, err := cache.Open(dir)
	if err != nil {
		return nil, err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = cc.Lock(ctx, func(holder string) {
		fmt.Fprintf(g.Stderr, "waiting for the build cache %s: another dib uses it (%s)\n", dir, holder)
	})
	if errors.Is(err, context.Canceled) {
		return nil, exitError{code: exitFailed}
	}
	return cc, err
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// usage reports a bad flag value (exit 64).
func usage(g *Globals, err error) error {
	printError(g.Stderr, err)
	return exitError{code: exitUsage}
}
