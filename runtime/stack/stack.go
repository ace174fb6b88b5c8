// Package stack is the cleanup stack of a build: every resource the runtime
// acquires (mount, temp dir, child process, chroot file swap) pushes its
// release here, and the stack releases them in reverse order on success,
// on failure and on SIGINT/SIGTERM.
package stack

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Release undoes one acquisition. It receives a context that is never
// cancelled, so an interrupted build still unmounts.
type Release func(ctx context.Context) error

type entry struct {
	name string
	fn   Release
}

// Stack is a LIFO of releases. The zero value is ready to use; it is safe
// for concurrent use.
type Stack struct {
	mu      sync.Mutex
	entries []entry
}

// Push adds a release named name (used in error messages) to the top.
func (s *Stack) Push(name string, fn Release) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries = append(s.entries, entry{name: name, fn: fn})
}

// Len reports how many releases are pending.
func (s *Stack) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// Names lists the pending releases, bottom first (for diagnostics and tests).
func (s *Stack) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, len(s.entries))
	for i, e := range s.entries {
		names[i] = e.name
	}
	return names
}

// Mark returns the current depth, to be given to ReleaseTo later: a phase
// that acquires resources only for its own duration (the chroot mounts)
// releases back to its mark and leaves older entries alone.
func (s *Stack) Mark() int { return s.Len() }

// Release runs every pending release, newest first. It continues past
// failures and returns them joined; the stack is empty afterwards whatever
// happened. The releases run under context.WithoutCancel(ctx).
func (s *Stack) Release(ctx context.Context) error { return s.ReleaseTo(ctx, 0) }

// ReleaseTo runs the releases pushed after mark, newest first, with the same
// guarantees as Release. A panic in a release is turned into an error so
// the remaining releases still run.
func (s *Stack) ReleaseTo(ctx context.Context, mark int) error {
	ctx = context.WithoutCancel(ctx)
	var errs []error
	for {
		e, ok := s.pop(mark)
		if !ok {
			break
		}
		if err := call(ctx, e); err != nil {
			errs = append(errs, fmt.Errorf("release %s: %w", e.name, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Stack) pop(mark int) (entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.entries) <= mark || len(s.entries) == 0 {
		return entry{}, false
	}
	e := s.entries[len(s.entries)-1]
	s.entries = s.entries[:len(s.entries)-1]
	return e, true
}

func call(ctx context.Context, e entry) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	if e.fn == nil {
		return nil
	}
	return e.fn(ctx)
}
