package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dibuild/dib/runtime/cache"
	"golang.org/x/sys/unix"
)

// claim is a build's claim on a cache key (Options.Flights): it runs the
// steps up to end, whose entry other builds wait for.
type claim struct {
	key string
	end int
}

// releaseFlight ends the build's claim, if any: its entry is written, or
// the build gave up.
func (b *Build) releaseFlight() {
	if b.flight.key != "" {
		b.Options.Flights.Release(b.flight.key)
		b.flight = claim{}
	}
}

// passFlight ends the build's claim after step i, whose entry is written,
// and when the build goes on building state, claims the steps up to the
// next snapshot in the same moment (Flights.Pass): the builds that waited
// for step i see at once that this build runs the next steps too, and wait
// for those instead of restoring a state they would leave again.
func (b *Build) passFlight(sc *stepCache, i int) {
	next := b.nextSnapshot(sc, i+1)
	if next < 0 || !cache.IsState(&b.Plan.Steps[i+1]) {
		b.releaseFlight()
		return
	}
	key := sc.keys[next].Key
	if b.Options.Flights.Pass(b.flight.key, key, b.Plan.Image.Name) {
		b.flight = claim{key: key, end: next}
		return
	}
	b.flight = claim{}
}

// nextSnapshot returns the first step from i on whose state the cache
// keeps (another build can take it), or -1.
func (b *Build) nextSnapshot(sc *stepCache, i int) int {
	for j := i; j < len(b.Plan.Steps); j++ {
		if b.Plan.Steps[j].Snapshot && sc.keys[j].State {
			return j
		}
	}
	return -1
}

// share is called before step i runs, with the cache. With Options.Flights
// it claims the steps from i to the next entry another build can take
// from the cache: the next snapshot point of the state, or the output
// step i itself. The first build to claim runs them (run is true).
// Another waits for it, then takes what it wrote from the cache and
// returns the index of the next step to consider; when the leader wrote
// nothing (it failed), it claims again.
func (b *Build) share(ctx context.Context, sc *stepCache, i int) (next int, run bool, err error) {
	fl := b.Options.Flights
	if fl == nil || b.Options.NoCache || b.flight.key != "" {
		return i, true, nil
	}
	p := b.Plan
	end := i
	state := cache.IsState(&p.Steps[i])
	if state {
		if end = b.nextSnapshot(sc, i); end < 0 {
			return i, true, nil // no entry ahead that another build could take
		}
	}
	key := sc.keys[end].Key
	s := &p.Steps[end]
	recheck := true
	// ahead is set once the build waited past a state it did not restore:
	// its tree is still the one before step i.
	ahead := false
	for {
		lead, leader, done := fl.Claim(key, p.Image.Name)
		if lead {
			// A leader releases its claim only once its entry is written:
			// if the entry is there now, it is taken instead of built.
			if m, _ := sc.c.Get(key); !recheck || m == nil || sc.exclude[key] {
				b.flight = claim{key: key, end: end}
				if ahead {
					// The state the cache has before this range first.
					sc.decide()
					if sc.dec.Restore >= i && !sc.dec.NoState && b.treeOnBuildDir() {
						return b.restoreFrom(ctx, sc, i)
					}
				}
				return i, true, nil
			}
			fl.Release(key)
		} else {
			fmt.Fprintf(b.Log, "dib: step %d (%s) and those before it are being run by the build of %s: waiting for its cache entry %s\n", end+1, s.Title, leader, key[:12])
			b.observer.Event(Event{Type: StepWaiting, Time: time.Now(), Plan: p.ID, Step: s.ID, Kind: s.Kind, Title: s.Title,
				Index: end + 1, Total: len(p.Steps), Holder: leader, LogPath: b.LogPath})
			select {
			case <-done:
			case <-ctx.Done():
				return i, false, &InterruptedError{Step: p.Steps[i].Title, Cause: context.Cause(ctx), LogPath: b.LogPath}
			}
		}
		sc.decide()
		switch {
		case sc.dec.NoState:
			// Everything is cached now (the same image twice).
			return b.finishCached(ctx, sc, i)
		case !state && sc.dec.Steps[i].Action == cache.Reuse:
			return i, false, nil // the loop restores its outputs
		case state && sc.dec.Restore >= end && b.treeOnBuildDir():
			// When the build that ran these steps already runs the next
			// ones too, wait for those rather than restore a state the
			// build would leave at once.
			if sc.dec.RestoreScripts == 0 {
				if next := b.nextSnapshot(sc, sc.dec.Restore+1); next >= 0 {
					if fl.Held(sc.keys[next].Key) {
						end, key, s, ahead = next, sc.keys[next].Key, &p.Steps[next], true
						continue
					}
				}
			}
			return b.restoreFrom(ctx, sc, i)
		}
		// No usable entry (the leader failed): claim again, and build.
		recheck = false
		fmt.Fprintf(b.Log, "dib: no usable cache entry for step %d (%s): building it\n", end+1, s.Title)
	}
}

// restoreFrom replaces the tree, built up to before step i, with the
// decided snapshot, a later state, and reports the steps up to it as
// cached. It returns the step that comes next.
func (b *Build) restoreFrom(ctx context.Context, sc *stepCache, i int) (int, bool, error) {
	if err := b.teardownChroot(ctx); err != nil {
		return i, false, err
	}
	if err := b.Options.Slots.acquire(ctx); err != nil {
		return i, false, &InterruptedError{Step: b.Plan.Steps[i].Title, Cause: err, LogPath: b.LogPath}
	}
	err := b.restoreState(sc)
	b.Options.Slots.release()
	if err != nil {
		return i, false, err
	}
	next := sc.dec.Restore + 1
	if sc.dec.RestoreScripts > 0 {
		next = sc.dec.Restore // restored inside it: it runs from its next script
	}
	for k := i; k < next; k++ {
		b.cachedEvent(k, sc.dec.Steps[k].Reason)
	}
	return next, false, nil
}

// finishCached ends a build whose every step another build put in the
// cache meanwhile: the outputs from step i on are restored. A corrupt
// entry is dropped and the state restored from the last snapshot, from
// which the build goes on.
func (b *Build) finishCached(ctx context.Context, sc *stepCache, i int) (int, bool, error) {
	for k := i; k < len(b.Plan.Steps); k++ {
		sd := sc.dec.Steps[k]
		if sd.Entry != nil && len(sd.Entry.Outputs) > 0 {
			if err := b.restoreOutputs(sc, sd.Entry); err != nil {
				if !errors.Is(err, cache.ErrCorrupt) {
					return k, false, err
				}
				b.corrupt(sc, sd.Entry, err)
				sc.decide()
				if sc.dec.Restore < 0 || !b.treeOnBuildDir() {
					return k, false, fmt.Errorf("cache entry %s is corrupt and no state to rebuild it from is cached", sd.Entry.Key[:12])
				}
				return b.restoreFrom(ctx, sc, i)
			}
		}
		b.cachedEvent(k, sd.Reason)
	}
	return len(b.Plan.Steps), false, nil
}

// treeOnBuildDir reports whether the tree is a directory of the build
// directory's filesystem, not a mounted disk image: only then can a
// snapshot replace it.
func (b *Build) treeOnBuildDir() bool {
	var tst, bst unix.Stat_t
	if unix.Stat(b.Tree(), &tst) != nil || unix.Stat(b.Workspace.BuildDir, &bst) != nil {
		return false
	}
	return tst.Dev == bst.Dev
}
