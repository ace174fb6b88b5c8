package progress

import (
	"bytes"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/dibuild/dib/runtime"
)

// ptyScreen collects what a pseudo-terminal shows. Tests wait for what they
// expect to appear (with a generous deadline) instead of sleeping a fixed
// time, so a loaded machine makes them slower, not red.
type ptyScreen struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
}

var screenEscapes = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// openScreen opens a 100×24 pseudo-terminal and starts reading its master
// side; it returns the screen and the terminal the observer writes to.
func openScreen(t *testing.T) (*ptyScreen, *os.File) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	s := &ptyScreen{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			s.mu.Lock()
			s.buf.Write(buf[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return s, tty
}

// raw is everything shown so far, escapes included.
func (s *ptyScreen) raw() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// plain is everything shown so far without terminal escapes.
func (s *ptyScreen) plain() string { return screenEscapes.ReplaceAllString(s.raw(), "") }

// waitFor waits up to 20 s for want to appear on the screen.
func (s *ptyScreen) waitFor(want string) bool {
	return s.waitUntil(func(_, plain string) bool { return strings.Contains(plain, want) })
}

// waitUntil waits up to 20 s for what the screen received (raw, and plain
// without escapes) to satisfy ok.
func (s *ptyScreen) waitUntil(ok func(raw, plain string) bool) bool {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		raw := s.raw()
		if ok(raw, screenEscapes.ReplaceAllString(raw, "")) {
			return true
		}
	}
	return false
}

// hangUp waits for last to be shown, then closes the terminal and waits for
// the reader to drain it.
func (s *ptyScreen) hangUp(tty *os.File, last string) {
	s.waitFor(last)
	tty.Close()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
	}
}

// TestTerminalUpdatesDuringALongStep drives the observer on a real
// pseudo-terminal through a step that runs for 2.5 s with two scripts, and
// reads what a terminal shows: the spinner is redrawn while the step runs,
// the elapsed time advances against the expected duration (the step's last
// build), the current script is named, the last 3 lines of the step's
// output show under it (carriage returns and colours resolved), and the
// finished step stays as a plain line.
func TestTerminalUpdatesDuringALongStep(t *testing.T) {
	screen, tty := openScreen(t)
	term := NewTerminal(tty, 100*time.Millisecond, 3)
	out := term.Output("")
	ev := func(e runtime.Event) {
		e.Time = time.Now()
		e.Index, e.Total = 6, 23
		e.Title = "phase install.d"
		term.Event(e)
	}
	ev(runtime.Event{Type: runtime.StepStarted, Expected: 114 * time.Second})
	ev(runtime.Event{Type: runtime.ScriptStarted, Script: "01-package-installs", Element: "package-installs"})
	// Each stage waits for the screen to show it (up to 20 s), not for a
	// fixed time: a loaded machine redraws late, not differently.
	io.WriteString(out, "package-installs/01-package-installs | Unpacking nginx-common\n")
	screen.waitFor("Unpacking nginx-common")
	io.WriteString(out, "package-installs/01-package-installs | Get:1 10%\rGet:1 100%\n\x1b[31mpackage-installs/01-package-installs | red")
	io.WriteString(out, " line\x1b[0m\npackage-installs/01-package-installs | Setting up nginx\n")
	screen.waitFor("Setting up nginx")
	ev(runtime.Event{Type: runtime.ScriptFinished})
	ev(runtime.Event{Type: runtime.ScriptStarted, Script: "50-devuser", Element: "devuser"})
	screen.waitFor("50-devuser (devuser)")
	screen.waitUntil(func(raw, plain string) bool {
		return len(elapsedShown(plain)) >= 2 && strings.Count(raw, "\x1b[") >= 5
	})
	// The step's duration is the event's, not the wall clock's: a loaded
	// machine must not change what this test expects to read.
	ev(runtime.Event{Type: runtime.StepFinished, Duration: 2500 * time.Millisecond})
	term.Close()
	screen.hangUp(tty, "done in 2.")

	shown, plain := screen.raw(), screen.plain()
	for _, want := range []string{"[6/23] phase install.d", "01-package-installs (package-installs)", "50-devuser (devuser)",
		"[6/23] phase install.d done in 2.5s",
		"│ package-installs/01-package-installs | Unpacking nginx-common", "│ Get:1 100%\r",
		"│ package-installs/01-package-installs | red line", "│ package-installs/01-package-installs | Setting up nginx"} {
		if !strings.Contains(plain, want) {
			t.Errorf("the terminal never showed %q:\n%q", want, plain)
		}
	}
	// The elapsed time advances against the expected duration: at least
	// two different values (the exact ones depend on the machine's load).
	if elapsed := elapsedShown(plain); len(elapsed) < 2 {
		t.Errorf("the elapsed time never advanced (%v):\n%q", elapsed, plain)
	}
	if redraws := strings.Count(shown, "\x1b["); redraws < 5 {
		t.Errorf("the line was redrawn %d times: no live update\n%q", redraws, shown)
	}
	if strings.Contains(plain, "10%") || strings.Contains(plain, "31m") {
		t.Errorf("a line overwritten by a carriage return, or a colour escape of the output, reached the screen:\n%q", plain)
	}
}

// elapsedShown is the set of elapsed times shown against the expected
// 01:54.
func elapsedShown(plain string) map[string]bool {
	elapsed := map[string]bool{}
	for _, m := range regexp.MustCompile(`(\d\d:\d\d) / ~01:54`).FindAllStringSubmatch(plain, -1) {
		elapsed[m[1]] = true
	}
	return elapsed
}

// TestTerminalWithoutTail: without -v no output line is drawn, and a
// step never built before shows its elapsed time alone.
func TestTerminalWithoutTail(t *testing.T) {
	screen, tty := openScreen(t)
	term := NewTerminal(tty, 50*time.Millisecond, 0)
	term.Event(runtime.Event{Type: runtime.StepStarted, Time: time.Now(), Index: 1, Total: 2, Title: "bootstrap"})
	io.WriteString(term.Output(""), "secret-looking output\n")
	shownElapsed := screen.waitFor("00:01")
	term.Event(runtime.Event{Type: runtime.StepFinished, Index: 1, Total: 2, Title: "bootstrap", Duration: time.Second})
	term.Close()
	screen.hangUp(tty, "bootstrap done")
	plain := screen.plain()
	if !shownElapsed || strings.Contains(plain, "output") || strings.Contains(plain, "/ ~") || !strings.Contains(plain, "bootstrap done in 1s") {
		t.Errorf("screen:\n%q", plain)
	}
}

// TestTerminalShowsEveryImage: after ShowImages, two builds' steps run at
// once; each has its own spinner line naming its image and step, and the
// lines left behind name their images.
func TestTerminalShowsEveryImage(t *testing.T) {
	screen, tty := openScreen(t)
	term := NewTerminal(tty, 50*time.Millisecond, 2)
	term.ShowImages()
	ev := func(image, typ, title string) {
		term.Event(runtime.Event{Type: typ, Image: image, Time: time.Now(), Index: 3, Total: 9, Title: title, Duration: time.Second})
	}
	ev("web", runtime.StepStarted, "phase install.d")
	ev("db", runtime.StepStarted, "phase root.d")
	ev("db", runtime.StepCached, "bootstrap")
	io.WriteString(term.Output("web"), "web's output\n")
	io.WriteString(term.Output("db"), "db's output\n")
	for _, want := range []string{"web: [3/9] phase install.d", "db: [3/9] phase root.d", "│ web's output", "│ db's output"} {
		if !screen.waitFor(want) {
			t.Errorf("while both ran, the terminal did not show %q:\n%q", want, screen.plain())
		}
	}
	ev("web", runtime.StepFinished, "phase install.d")
	ev("db", runtime.StepFailed, "phase root.d")
	term.Close()
	screen.hangUp(tty, "FAILED in 1s")
	plain := screen.plain()
	for _, want := range []string{"db: [3/9] bootstrap cached", "web: [3/9] phase install.d done in 1s", "db: [3/9] phase root.d FAILED in 1s\r\ndb:   │ db's output"} {
		if !strings.Contains(plain, want) {
			t.Errorf("the terminal never showed %q:\n%q", want, plain)
		}
	}
}
