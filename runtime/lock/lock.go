// Package lock is dib's inter-process lock: an flock(2) on a lock file,
// held by an open file description, so the kernel releases it when the
// holder dies (even by SIGKILL) and a stale lock can never block a build.
//
// The holder writes a one-line description of itself into the file (pid,
// what it does, when it started), so a second process can say whom it
// waits for. The file itself is never removed: removing a lock file while
// another process waits on the old inode would let two holders in.
//
//	l, err := lock.Acquire(ctx, dir+"/.dib/lock", lock.Options{
//		Holder: "dib apply debian-vm",
//		Waiting: func(h string) { fmt.Fprintf(os.Stderr, "waiting for %s\n", h) },
//	})
//	if err != nil { ... }        // ctx cancelled, or ErrBusy with NoWait
//	defer l.Release()
package lock

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ErrBusy is wrapped by the error Acquire returns with NoWait when another
// process holds the lock.
var ErrBusy = errors.New("locked by another process")

// Options tune Acquire.
type Options struct {
	// Shared takes a shared (read) lock; the default is exclusive.
	Shared bool
	// NoWait fails at once with an error wrapping ErrBusy instead of waiting.
	NoWait bool
	// Holder describes this process to those who wait (written into the
	// lock file when the lock is exclusive); the pid and the time are added.
	Holder string
	// Waiting is called once, with the current holder's description, when
	// the lock is busy and Acquire starts to wait.
	Waiting func(holder string)
	// Poll is the interval between attempts while waiting; default 200ms.
	Poll time.Duration
	// RemoveOnRelease unlinks the lock file (and its directory, when
	// empty) on Release, so nothing is left behind; exclusive locks only.
	// Acquire re-checks after locking that it holds the file at path, so
	// removal never lets two holders in.
	RemoveOnRelease bool
}

// Lock is a held lock.
type Lock struct {
	f      *os.File
	path   string
	remove bool
}

// Acquire takes the lock at path, creating the file (and its directory)
// if needed. It waits until the lock is free or ctx is done.
func Acquire(ctx context.Context, path string, o Options) (*Lock, error) {
	how := syscall.LOCK_EX
	if o.Shared {
		how = syscall.LOCK_SH
	}
	poll := o.Poll
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	told := false
	for {
		f, err := open(path)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		err = syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			// A holder that removes the file on release may have
			// unlinked it after we opened it: then ours is a lock on a
			// dead inode, and we start over on the new file.
			if same(f, path) {
				return hold(f, path, o), nil
			}
			f.Close()
			continue
		}
		f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		holder := readHolder(path)
		if o.NoWait {
			return nil, &BusyError{Path: path, Holder: holder}
		}
		if !told && o.Waiting != nil {
			o.Waiting(holder)
			told = true
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for lock %s (held by %s): %w", path, holder, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// open opens (creating) the lock file; its directory may vanish under a
// holder's RemoveOnRelease, so a missing directory is made again.
func open(path string) (*os.File, error) {
	for i := 0; ; i++ {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err == nil || !errors.Is(err, fs.ErrNotExist) || i >= 10 {
			return f, err
		}
	}
}

// same reports whether the open file is still the one at path.
func same(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

func hold(f *os.File, path string, o Options) *Lock {
	l := &Lock{f: f, path: path, remove: o.RemoveOnRelease && !o.Shared}
	if !o.Shared {
		desc := fmt.Sprintf("%s (pid %d, since %s)", strings.TrimSpace(o.Holder), os.Getpid(), time.Now().UTC().Format(time.RFC3339))
		if o.Holder == "" {
			desc = fmt.Sprintf("pid %d, since %s", os.Getpid(), time.Now().UTC().Format(time.RFC3339))
		}
		// Best effort: the description only makes messages clearer.
		if err := f.Truncate(0); err == nil {
			_, _ = f.WriteAt([]byte(desc+"\n"), 0)
		}
	}
	return l
}

// BusyError is returned with NoWait when the lock is held.
type BusyError struct {
	Path   string
	Holder string
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("%s is locked by %s", e.Path, e.Holder)
}

// Unwrap makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Unwrap() error { return ErrBusy }

// readHolder returns the holder's description, or "another process".
func readHolder(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "another process"
	}
	s := strings.TrimSpace(string(b))
	if s == "" || len(s) > 512 {
		return "another process"
	}
	return s
}

// Release frees the lock. It is safe to call more than once.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	// Closing the file releases the flock. The description goes first
	// (best effort: waiters only print it); a removable lock file goes
	// while still held.
	_ = f.Truncate(0)
	if l.remove {
		_ = os.Remove(l.path)
		_ = os.Remove(filepath.Dir(l.path)) // only when empty
	}
	return f.Close()
}
