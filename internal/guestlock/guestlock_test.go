package guestlock

import (
	"testing"
	"time"
)

// TestSlots: Slots guests get a slot at once, the next waits, and a freed
// slot is taken again. The slots are the test's own, not the machine's,
// which other test packages may hold while this one runs.
func TestSlots(t *testing.T) {
	dir := t.TempDir()
	var held []func()
	for range Slots {
		r, err := acquireIn(dir, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, r)
	}
	if r, err := acquireIn(dir, 500*time.Millisecond); err == nil {
		r()
		t.Fatal("a guest got a slot while all were taken")
	}
	held[0]()
	r, err := acquireIn(dir, 5*time.Second)
	if err != nil {
		t.Fatalf("a freed slot was not taken again: %v", err)
	}
	r()
	for _, r := range held[1:] {
		r()
	}
}
