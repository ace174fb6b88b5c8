package progress

import (
	"strings"
	"testing"

	"github.com/dibuild/dib/runtime"
)

// TestRegistryEventsShown: the plain progress says what was pulled and
// pushed, and why the registry was not used.
func TestRegistryEventsShown(t *testing.T) {
	var b strings.Builder
	o := Text(&b)
	o.Event(runtime.Event{Type: runtime.CachePulled, Title: "phase install.d", Reason: "pulled from http://127.0.0.1:1/dib: 3.0 MiB in 20ms"})
	o.Event(runtime.Event{Type: runtime.CachePushed, Title: "output tar", Reason: "pushed to r.example.org/dib: 1.0 MiB in 5ms"})
	o.Event(runtime.Event{Type: runtime.CacheRemoteError, Error: "cache registry: entry 0123 not used: connection refused"})
	want := "    phase install.d: pulled from http://127.0.0.1:1/dib: 3.0 MiB in 20ms\n" +
		"    output tar: pushed to r.example.org/dib: 1.0 MiB in 5ms\n" +
		"==> cache registry: entry 0123 not used: connection refused\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// TestBreakpointShown: the runtime reports a breakpoint as an event (it
// prints nothing itself); the plain view says how to go on.
func TestBreakpointShown(t *testing.T) {
	var b strings.Builder
	Text(&b).Event(runtime.Event{Type: runtime.Breakpoint, Title: "phase install.d", Reason: "before-install"})
	if want := "dib: breakpoint before-install at step \"phase install.d\": exit the shell to continue\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}
