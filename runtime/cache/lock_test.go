package cache

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSharedLock: applies hold the cache's lock shared, so two of them
// use the cache at once; an exclusive holder (prune, verify) waits for
// them, and makes a new apply wait. Leftovers in tmp/ are removed only by
// a holder alone with the cache: never under a writer's feet.
func TestSharedLock(t *testing.T) {
	dir := t.TempDir()
	open := func() *Cache {
		c, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := open(), open()
	if err := a.LockShared(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	// A writer of a holds this directory under tmp/.
	writing := filepath.Join(dir, "tmp", "being-written")
	if err := os.Mkdir(writing, 0o700); err != nil {
		t.Fatal(err)
	}
	waited := false
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := b.LockShared(ctx, func(string) { waited = true }); err != nil || waited {
		t.Fatalf("a second shared lock: err %v, waited %v", err, waited)
	}
	if _, err := os.Stat(writing); err != nil {
		t.Fatalf("the second apply removed what the first is writing: %v", err)
	}

	// An exclusive locker waits for both.
	x := open()
	var holder string
	ctx2, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	if err := x.Lock(ctx2, func(h string) { holder = h }); !errors.Is(err, context.DeadlineExceeded) || holder == "" {
		t.Fatalf("exclusive lock while applies hold it: err %v, told %q", err, holder)
	}
	a.Unlock()
	b.Unlock()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := x.Lock(context.Background(), nil); err != nil {
			t.Error(err)
		}
	}()
	wg.Wait()
	if _, err := os.Stat(writing); !os.IsNotExist(err) {
		t.Errorf("the exclusive holder kept the interrupted writer's directory: %v", err)
	}
	// Now an apply waits for the exclusive holder, and is told who it is.
	c := open()
	told := ""
	ctx3, cancel3 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel3()
	if err := c.LockShared(ctx3, func(h string) { told = h }); !errors.Is(err, context.DeadlineExceeded) || told == "" {
		t.Fatalf("shared lock under an exclusive one: err %v, told %q", err, told)
	}
	x.Unlock()
	if err := c.LockShared(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	c.Unlock()
}

// TestFlights: the first claimant of a key leads; the others learn who
// and wait until it releases the key; a key released can be claimed anew.
func TestFlights(t *testing.T) {
	var f Flights
	lead, who, _ := f.Claim("k", "web")
	if !lead || who != "web" {
		t.Fatalf("first claim: lead %v, %q", lead, who)
	}
	lead, who, done := f.Claim("k", "db")
	if lead || who != "web" || done == nil {
		t.Fatalf("second claim: lead %v, leader %q", lead, who)
	}
	if lead, _, _ := f.Claim("other", "db"); !lead {
		t.Error("another key is not free")
	}
	select {
	case <-done:
		t.Fatal("done before the leader released")
	default:
	}
	f.Release("k")
	<-done
	if lead, _, _ := f.Claim("k", "db"); !lead {
		t.Error("a released key cannot be claimed")
	}
	var none *Flights
	if lead, _, _ := none.Claim("k", "x"); !lead {
		t.Error("nil Flights must let every build lead")
	}
	none.Release("k")
}

// TestFlightsPass: Pass releases one key (waking its waiters) and claims
// the next for the same owner in one step, so a woken waiter finds the
// next key held; a next key another holds is not taken.
func TestFlightsPass(t *testing.T) {
	var f Flights
	f.Claim("boot", "web")
	_, _, done := f.Claim("boot", "db")
	if f.Held("root") {
		t.Fatal("root held before anyone claimed it")
	}
	if !f.Pass("boot", "root", "web") {
		t.Fatal("pass to a free key failed")
	}
	<-done
	if !f.Held("root") || f.Held("boot") {
		t.Errorf("after Pass: root held %v, boot held %v", f.Held("root"), f.Held("boot"))
	}
	if lead, who, _ := f.Claim("root", "db"); lead || who != "web" {
		t.Errorf("claim of the passed key: lead %v, leader %q", lead, who)
	}
	f.Claim("other", "db")
	if f.Pass("root", "other", "web") {
		t.Error("Pass took a key another build holds")
	}
	if f.Held("root") {
		t.Error("Pass did not release the old key")
	}
}

// TestSharedLockNoFalseWait: an apply that finds the lock held
// exclusively for a moment (another apply clearing tmp/ as it starts) is
// not told that it waits for another command.
func TestSharedLockNoFalseWait(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	}()
	told := ""
	if err := c.LockShared(context.Background(), func(h string) { told = h }); err != nil {
		t.Fatal(err)
	}
	defer c.Unlock()
	if told != "" {
		t.Errorf("told of a wait for %q", told)
	}
}
