// Package guestlock limits how many emulated (TCG) guests the test suite
// runs at once on this machine, across test binaries: go test runs
// packages in parallel, and the runtime/boot and cmd/dib end-to-end tests
// each start guests. On a 2-core CI host five TCG guests at once made
// boots so slow that they ran past their timeouts (a guest's systemd gave
// up on its devices and entered emergency mode); two at a time boot in a
// minute each.
package guestlock

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Slots is how many guests may run at once.
const Slots = 2

// Acquire waits up to wait for one of the machine's guest slots and
// returns the function that frees it. The slots are flock(2)ed files in
// the temporary directory, so a test binary that dies frees its slot.
func Acquire(wait time.Duration) (release func(), err error) {
	return acquireIn(os.TempDir(), wait)
}

// acquireIn is Acquire with the slot files in dir.
func acquireIn(dir string, wait time.Duration) (release func(), err error) {
	deadline := time.Now().Add(wait)
	for {
		for i := range Slots {
			f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("dib-test-guest-%d.lock", i)), os.O_CREATE|os.O_RDWR, 0o600)
			if err != nil {
				return nil, err
			}
			if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
				return func() { f.Close() }, nil
			}
			f.Close()
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no guest slot free after %s", wait)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
