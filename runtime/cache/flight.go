package cache

import "sync"

// Flights lets the builds of one process (`dib apply` of a Dibfile with
// several images) run a step they share once: the first build to claim a
// cache key runs the steps up to it and writes its entry; the others wait
// for it, then take the entry from the cache. Keys are cache keys, so two
// builds share a step only when everything before it is the same.
//
// The zero value is ready to use; a nil *Flights shares nothing (every
// claim leads).
type Flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct {
	owner string
	done  chan struct{}
}

// Claim claims key for owner (an image name). The first claimant leads:
// it gets lead true and must call Release(key) when its entry is written
// or it gave up. Any other gets lead false, the leader's name, and a
// channel closed when the leader releases the key; it then looks for the
// entry in the cache and, when it is not there (the leader failed),
// claims again.
func (f *Flights) Claim(key, owner string) (lead bool, leader string, done <-chan struct{}) {
	if f == nil {
		return true, owner, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl, ok := f.m[key]; ok {
		return false, fl.owner, fl.done
	}
	if f.m == nil {
		f.m = map[string]*flight{}
	}
	f.m[key] = &flight{owner: owner, done: make(chan struct{})}
	return true, owner, nil
}

// Release ends the leader's claim of key and wakes those waiting for it.
func (f *Flights) Release(key string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl, ok := f.m[key]; ok {
		close(fl.done)
		delete(f.m, key)
	}
}

// Pass ends owner's claim of key and, in the same moment, claims next for
// owner, unless another build holds next: a leader going on to the next
// steps it shares. A build woken by the release that looks for who runs
// next (Held) finds the claim already there. It reports whether owner
// now holds next.
func (f *Flights) Pass(key, next, owner string) bool {
	if f == nil {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl, ok := f.m[key]; ok {
		close(fl.done)
		delete(f.m, key)
	}
	if _, ok := f.m[next]; ok {
		return false
	}
	if f.m == nil {
		f.m = map[string]*flight{}
	}
	f.m[next] = &flight{owner: owner, done: make(chan struct{})}
	return true
}

// Held reports whether a build holds key, without claiming it.
func (f *Flights) Held(key string) bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.m[key]
	return ok
}
