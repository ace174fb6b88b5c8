package runtime

import "context"

// Slots bounds how many steps the builds of one process run at once
// (`dib apply -j N` of a multi-image Dibfile). A build holds a slot while
// a step of it runs and its cache entry is written, and while it restores
// a state another build put in the cache; it holds none while it waits
// for such a step (Options.Flights), so a build that waits never keeps
// another from running. Bounding steps rather than builds lets three
// images share two cores: with two builds at a time the third started
// only when one ended and then ran alone on a core of two
// (bench/parallel.sh).
type Slots struct{ ch chan struct{} }

// NewSlots makes n slots (at least one).
func NewSlots(n int) *Slots { return &Slots{ch: make(chan struct{}, max(n, 1))} }

// acquire takes a slot, or returns ctx's error. A nil *Slots bounds
// nothing.
func (s *Slots) acquire(ctx context.Context) error {
	if s == nil {
		return nil
	}
	select {
	case s.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// release gives back a slot taken by acquire.
func (s *Slots) release() {
	if s != nil {
		<-s.ch
	}
}
