package lock

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestExclusiveNoWait(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "lock")
	l, err := Acquire(context.Background(), path, Options{Holder: "dib apply one"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(context.Background(), path, Options{NoWait: true})
	var be *BusyError
	if !errors.Is(err, ErrBusy) || !errors.As(err, &be) {
		t.Fatalf("second lock: %v, want ErrBusy", err)
	}
	if !strings.Contains(be.Holder, "dib apply one (pid ") {
		t.Errorf("holder = %q", be.Holder)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Fatal("second release:", err)
	}
	l2, err := Acquire(context.Background(), path, Options{NoWait: true})
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l2.Release()
}

func TestWaitsAndSaysForWhom(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	l, err := Acquire(context.Background(), path, Options{Holder: "first"})
	if err != nil {
		t.Fatal(err)
	}
	var told atomic.Value
	got := make(chan error, 1)
	go func() {
		l2, err := Acquire(context.Background(), path, Options{Poll: 10 * time.Millisecond, Waiting: func(h string) { told.Store(h) }})
		if err == nil {
			l2.Release()
		}
		got <- err
	}()
	// Wait (generously) until the second Acquire says whom it waits for,
	// rather than a fixed time a loaded machine may not honour.
	for deadline := time.Now().Add(60 * time.Second); told.Load() == nil; time.Sleep(10 * time.Millisecond) {
		select {
		case err := <-got:
			t.Fatalf("second Acquire returned while the lock was held: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the second Acquire never said it waits")
		}
	}
	select {
	case err := <-got:
		t.Fatalf("second Acquire returned while the lock was held: %v", err)
	default:
	}
	l.Release()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if h, _ := told.Load().(string); !strings.HasPrefix(h, "first (pid ") {
		t.Errorf("Waiting got %q", h)
	}
}

func TestCancelledWait(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	l, err := Acquire(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := Acquire(ctx, path, Options{Poll: 5 * time.Millisecond}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
}

func TestShared(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	a, err := Acquire(context.Background(), path, Options{Shared: true, NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Acquire(context.Background(), path, Options{Shared: true, NoWait: true})
	if err != nil {
		t.Fatalf("second shared lock: %v", err)
	}
	if _, err := Acquire(context.Background(), path, Options{NoWait: true}); !errors.Is(err, ErrBusy) {
		t.Fatalf("exclusive while shared held: %v", err)
	}
	a.Release()
	b.Release()
	c, err := Acquire(context.Background(), path, Options{NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	c.Release()
}

// TestKilledHolderReleases: a holder killed with SIGKILL leaves no stale lock.
func TestKilledHolderReleases(t *testing.T) {
	if p := os.Getenv("DIB_LOCK_TEST_HOLD"); p != "" {
		if _, err := Acquire(context.Background(), p, Options{Holder: "child"}); err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("held\n")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	path := filepath.Join(t.TempDir(), "lock")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledHolderReleases$")
	cmd.Env = append(os.Environ(), "DIB_LOCK_TEST_HOLD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := out.Read(buf); err != nil || string(buf) != "held\n" {
		t.Fatalf("child: %q %v", buf, err)
	}
	if _, err := Acquire(context.Background(), path, Options{NoWait: true}); !errors.Is(err, ErrBusy) {
		t.Fatalf("lock held by the child: %v", err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	l, err := Acquire(context.Background(), path, Options{NoWait: true})
	if err != nil {
		t.Fatalf("after SIGKILL of the holder: %v", err)
	}
	l.Release()
}

// TestRemoveOnRelease: the lock file and its directory go on release, and
// many processes taking turns never hold the lock together.
func TestRemoveOnRelease(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "lock")
	l, err := Acquire(context.Background(), path, Options{RemoveOnRelease: true})
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("lock directory left: %v", err)
	}
	var inside, overlap atomic.Int32
	done := make(chan error)
	for i := 0; i < 8; i++ {
		go func() {
			for j := 0; j < 20; j++ {
				l, err := Acquire(context.Background(), path, Options{RemoveOnRelease: true, Poll: time.Millisecond})
				if err != nil {
					done <- err
					return
				}
				if inside.Add(1) > 1 {
					overlap.Add(1)
				}
				time.Sleep(100 * time.Microsecond)
				inside.Add(-1)
				l.Release()
			}
			done <- nil
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if overlap.Load() > 0 {
		t.Fatalf("%d times two holders at once", overlap.Load())
	}
}
