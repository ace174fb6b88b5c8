package runtime

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/runtime/cache"
	"github.com/dibuild/dib/runtime/cache/remote"
	"github.com/dibuild/dib/spec/diag"
)

// Events of the registry cache (runtime/cache/remote).
const (
	// CachePulled: a step's entry was downloaded from the registry into
	// the local cache (Reason says how much, from where).
	CachePulled = "cache-pulled"
	// CachePushed: a step's entry was uploaded to the registry.
	CachePushed = "cache-pushed"
	// CacheRemoteError: the registry could not be used for a step (Error
	// says why); the step runs, or its entry stays unpushed. A corrupt
	// entry pulled is a CacheCorrupt event instead.
	CacheRemoteError = "cache-remote-error"
)

// openRemotes chooses the registries: pullRegistry; Options.CacheTo.
func (sc *stepCache) openRemotes(o Options) error {
	from, err := pullRegistry(sc.p, o)
	if err != nil {
		return err
	}
	sc.from, sc.to = from, o.CacheTo
	return nil
}

// pullRegistry is the registry a build of p pulls from: Options.CacheFrom,
// else the plan's cache.registry (unless Options.NoCacheRegistry); nil:
// none.
func pullRegistry(p *plan.Plan, o Options) (*remote.Remote, error) {
	if o.CacheFrom != nil || o.NoCacheRegistry || p.Cache == nil || p.Cache.Registry == "" {
		return o.CacheFrom, nil
	}
	r, err := remote.Open(p.Cache.Registry)
	if err != nil {
		return nil, diag.Diagnostics{diag.Errorf("%v", err).WithSubject("cache.registry")}
	}
	return r, nil
}

// remoteLookup lets the cache decision use entries of the registry
// (Options.CacheFrom), as lookupRemote, reporting its failures as events.
func (b *Build) remoteLookup(ctx context.Context, sc *stepCache) func(string) *cache.Meta {
	return lookupRemote(ctx, sc.from, func(key, msg string) { b.remoteError(sc, key, msg) })
}

// lookupRemote returns a cache.DecideOptions.Lookup that finds entries in
// the registry from: each key is asked for once; a registry that cannot
// answer is reported (key "") and then counts as having no entry; an
// entry that cannot be used is reported with its key and counts as
// absent.
func lookupRemote(ctx context.Context, from *remote.Remote, report func(key, msg string)) func(string) *cache.Meta {
	seen := map[string]*cache.Meta{}
	down := false
	return func(key string) *cache.Meta {
		if m, ok := seen[key]; ok || down {
			return m
		}
		m, err := from.Lookup(ctx, key)
		switch {
		case unreachable(err):
			down = true
			report("", fmt.Sprintf("cache registry %s not used: %v", from.Ref, err))
		case err != nil:
			report(key, fmt.Sprintf("cache registry: entry %s not used: %v", plan.ShortID(key), err))
		}
		seen[key] = m
		return m
	}
}

// unreachable reports whether err says the registry could not be reached
// at all (not that an entry is bad): the registry is then not asked again
// during the build.
func unreachable(err error) bool {
	var ue *url.Error
	return errors.As(err, &ue)
}

// remoteError reports a failed use of the registry.
func (b *Build) remoteError(sc *stepCache, key, msg string) {
	fmt.Fprintf(b.Log, "dib: %s\n", msg)
	ev := Event{Type: CacheRemoteError, Time: time.Now(), Plan: b.Plan.ID, Error: msg}
	if i := sc.index(key); i >= 0 {
		ev.Step, ev.Title = b.Plan.Steps[i].ID, b.Plan.Steps[i].Title
	}
	b.observer.Event(ev)
}

// index is the position of the step with the given cache key, or -1.
func (sc *stepCache) index(key string) int {
	for i, k := range sc.keys {
		if k.Key == key {
			return i
		}
	}
	return -1
}

// needed lists the entries the decision uses whose files the build
// reads: the snapshot it restores with the parents it is a layer on, and
// the outputs it reuses (of output steps, and of the manifests step when
// nothing runs).
func (sc *stepCache) needed() []*cache.Meta {
	var need []*cache.Meta
	if d := sc.dec; d.Restore >= 0 && !d.NoState && d.RestoreEntry != nil {
		need = append(need, sc.chain(d.RestoreEntry)...)
	}
	for _, sd := range sc.dec.Steps {
		if sd.Action == cache.Reuse && sd.Entry != nil && len(sd.Entry.Outputs) > 0 {
			need = append(need, sd.Entry)
		}
	}
	return need
}

// pullDecided downloads the registry entries the decision needs and the
// local cache lacks. An entry that fails (a digest that does not match, a
// broken connection) is reported and left out, and the decision is made
// again without it. When ctx ends it stops; the build then stops before
// its next step.
func (b *Build) pullDecided(ctx context.Context, sc *stepCache) {
	from := sc.from
	for {
		again := false
		for _, m := range sc.needed() {
			if local, _ := sc.c.Get(m.Key); local != nil {
				continue
			}
			if ctx.Err() != nil {
				return
			}
			start := time.Now()
			n, err := from.Pull(ctx, sc.c, m.Key)
			switch {
			case errors.Is(err, cache.ErrCorrupt):
				b.corrupt(sc, m, err)
			case err != nil:
				b.remoteError(sc, m.Key, fmt.Sprintf("cache registry: entry %s (step %q) not used, the step runs: %v", plan.ShortID(m.Key), m.Title, err))
				sc.exclude[m.Key] = true
			default:
				reason := fmt.Sprintf("pulled from %s: %s in %s", from.Ref, mib(n), time.Since(start).Round(time.Millisecond))
				fmt.Fprintf(b.Log, "dib: cache entry %s (step %q) %s\n", plan.ShortID(m.Key), m.Title, reason)
				b.observer.Event(Event{Type: CachePulled, Time: time.Now(), Plan: b.Plan.ID, Step: m.Step, Title: m.Title, Reason: reason})
				continue
			}
			again = true
			break
		}
		if !again {
			return
		}
		sc.dec = sc.c.Decide(sc.p, sc.keys, sc.opts)
	}
}

// chain lists a snapshot entry's parents (oldest first) and the entry,
// from the local cache or the registry (the decision found them all).
func (sc *stepCache) chain(m *cache.Meta) []*cache.Meta {
	out := []*cache.Meta{m}
	for cur := m; cur.Snapshot != nil && cur.Snapshot.Parent != "" && len(out) < 1000; {
		p, _ := sc.c.Get(cur.Snapshot.Parent)
		if p == nil && sc.opts.Lookup != nil {
			p = sc.opts.Lookup(cur.Snapshot.Parent)
		}
		if p == nil {
			break
		}
		out = append([]*cache.Meta{p}, out...)
		cur = p
	}
	return out
}

// pushAll uploads to the registry (Options.CacheTo) the local entries of
// the plan's steps, and of the points inside them, that it lacks, a
// snapshot layer after the parents it is a layer on; except those of
// steps that see a secret or build on one (remote.Shareable). A failure
// is reported, not fatal: the build's result does not depend on the
// cache.
func (b *Build) pushAll(ctx context.Context, sc *stepCache) {
	to := sc.to
	share := remote.Shareable(sc.keys, sc.c.SharedSecretKey())
	var sent int64
	pushed, secret := 0, 0
	start := time.Now()
	done := map[string]bool{} // key -> in the registry
	down := false             // the registry cannot be reached
	var push func(key string) bool
	push = func(key string) bool {
		if ok, seen := done[key]; seen {
			return ok
		}
		done[key] = false
		m, err := sc.c.Get(key)
		if err != nil || m == nil || m.Incomplete || ctx.Err() != nil || down {
			return false
		}
		if !share[key] {
			secret++
			return false
		}
		if m.Snapshot != nil && m.Snapshot.Parent != "" && !push(m.Snapshot.Parent) {
			fmt.Fprintf(b.Log, "dib: cache registry: entry %s (step %q) not pushed: the snapshot it is a layer on (%s) is not\n", plan.ShortID(key), m.Title, plan.ShortID(m.Snapshot.Parent))
			return false
		}
		has, err := to.Has(ctx, key)
		if err == nil && has {
			done[key] = true
			return true
		}
		t0 := time.Now()
		var n int64
		if err == nil {
			n, err = to.Push(ctx, sc.c, m)
		}
		if unreachable(err) {
			down = true
			b.remoteError(sc, "", fmt.Sprintf("cache registry %s: nothing pushed: %v", to.Ref, err))
			return false
		}
		if err != nil {
			b.remoteError(sc, key, fmt.Sprintf("cache registry: entry %s (step %q) not pushed: %v", plan.ShortID(key), m.Title, err))
			return false
		}
		sent += n
		pushed++
		reason := fmt.Sprintf("pushed to %s: %s in %s", to.Ref, mib(n), time.Since(t0).Round(time.Millisecond))
		b.observer.Event(Event{Type: CachePushed, Time: time.Now(), Plan: b.Plan.ID, Step: m.Step, Title: m.Title, Reason: reason})
		done[key] = true
		return true
	}
	for _, k := range sc.keys {
		for _, pt := range k.Points {
			push(pt.Key)
		}
		push(k.Key)
	}
	fmt.Fprintf(b.Log, "dib: cache registry %s: pushed %d entries (%s) in %s", to.Ref, pushed, mib(sent), time.Since(start).Round(time.Millisecond))
	if secret > 0 {
		fmt.Fprintf(b.Log, "; %d entries not pushed: their steps see a secret or build on one (see --cache-secret-key)", secret)
	}
	fmt.Fprintln(b.Log)
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
