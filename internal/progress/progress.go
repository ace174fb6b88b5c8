// Package progress shows a build's progress on a terminal: the running
// step with a spinner, its elapsed time against the time it took when last
// built ("01:12 / ~01:54", from the build cache's records) and the script
// it runs now, optionally the last lines of its output under it (-v), with
// each finished step left as a line above. It renders with
// github.com/vbauerster/mpb; when the output is not a terminal, callers use
// the plain lines of Text instead (plain.go), and --json is unchanged.
package progress

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/dibuild/dib/runtime"
)

// Terminal is a runtime.Observer drawing on a terminal. Close it when the
// build ends: it finishes the drawing. After ShowImages it draws several
// builds at once (a multi-image apply): one spinner line per running
// image, and each line it leaves names its image.
type Terminal struct {
	p *mpb.Progress

	// mu serialises events. It is held while writing to p, which waits
	// for mpb's renderer; the renderer calls the decorators, so they must
	// never take mu (that was a deadlock): they read what they show under
	// their own lock, dmu, which nothing holds across a call to mpb.
	mu     sync.Mutex
	bars   map[string]*imageBar // by image ("" before ShowImages)
	images bool
	closed bool

	dmu      sync.Mutex
	tailSize int              // lines of output shown under a step (0: none)
	tails    map[string]*tail // by image, as bars; under dmu
}

// imageBar is the spinner line of one image's running step. Decorators
// read its fields under dmu.
type imageBar struct {
	bar      *mpb.Bar
	step     string // "[6/23] phase install.d"
	script   string // "50-devuser (devuser)"
	start    time.Time
	expected time.Duration
}

// tail is the last lines of a running step's output, and the line being
// written.
type tail struct {
	lines   []string
	partial []byte
}

// set changes what the decorators of an image's line show.
func (t *Terminal) set(ib *imageBar, step, script *string) {
	t.dmu.Lock()
	defer t.dmu.Unlock()
	if step != nil {
		ib.step = *step
	}
	if script != nil {
		ib.script = *script
	}
}

// NewTerminal draws on w, a terminal, refreshing every refresh (0: 150 ms).
// With tailLines > 0, the last tailLines lines written to Output are shown
// under the running step.
func NewTerminal(w io.Writer, refresh time.Duration, tailLines int) *Terminal {
	if refresh == 0 {
		refresh = 150 * time.Millisecond
	}
	return &Terminal{p: mpb.New(mpb.WithOutput(w), mpb.WithRefreshRate(refresh), mpb.WithAutoRefresh(), mpb.WithWidth(1)),
		bars: map[string]*imageBar{}, tailSize: tailLines, tails: map[string]*tail{}}
}

// ShowImages makes every line name its image: several builds share the
// terminal.
func (t *Terminal) ShowImages() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.images = true
}

// Output is where the running step of image's build writes its output
// (runtime.Options.Console; image "" for a single build), shown as its
// last lines under the step; nothing is shown when the Terminal was made
// without a tail.
func (t *Terminal) Output(image string) io.Writer { return tailWriter{t, image} }

type tailWriter struct {
	t     *Terminal
	image string
}

// tailOf returns the tail of key (under dmu).
func (t *Terminal) tailOf(key string) *tail {
	tl := t.tails[key]
	if tl == nil {
		tl = &tail{}
		t.tails[key] = tl
	}
	return tl
}

// Write keeps the last complete lines of p.
func (w tailWriter) Write(p []byte) (int, error) {
	t := w.t
	t.dmu.Lock()
	defer t.dmu.Unlock()
	if t.tailSize == 0 {
		return len(p), nil
	}
	tl := t.tailOf(w.image)
	tl.partial = append(tl.partial, p...)
	for {
		i := bytes.IndexByte(tl.partial, '\n')
		if i < 0 {
			break
		}
		tl.lines = append(tl.lines, cleanLine(tl.partial[:i]))
		if len(tl.lines) > t.tailSize {
			tl.lines = append(tl.lines[:0], tl.lines[1:]...)
		}
		tl.partial = tl.partial[i+1:]
	}
	if len(tl.partial) > 64<<10 { // a very long line: keep its end
		tl.partial = append([]byte(nil), tl.partial[len(tl.partial)-4096:]...)
	}
	return len(p), nil
}

var escapes = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]`)

// cleanLine makes a line of output safe to draw: what a carriage return
// overwrote dropped, terminal escapes removed, other control characters
// as spaces.
func cleanLine(b []byte) string {
	s := strings.TrimRight(string(b), "\r")
	if i := strings.LastIndexByte(s, '\r'); i >= 0 {
		s = s[i+1:]
	}
	s = escapes.ReplaceAllString(s, "")
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// tailRow draws the i-th line of key's tail under its running step.
func (t *Terminal) tailRow(key string, i int) mpb.BarFiller {
	return mpb.BarFillerFunc(func(w io.Writer, st decor.Statistics) error {
		t.dmu.Lock()
		line := ""
		if tl := t.tails[key]; tl != nil && i < len(tl.lines) {
			line = tl.lines[i]
		}
		t.dmu.Unlock()
		width := st.AvailableWidth - 1
		if width < 20 {
			width = 79
		}
		line = "  │ " + line
		if r := []rune(line); len(r) > width {
			line = string(r[:width])
		}
		_, err := io.WriteString(w, line+"\n")
		return err
	})
}

// clock formats d as MM:SS, or H:MM:SS from an hour.
func clock(d time.Duration) string {
	s := int(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%02d:%02d", s/60, s%60)
}

// Event implements runtime.Observer.
func (t *Terminal) Event(e runtime.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	key, prefix := "", ""
	if t.images {
		key = e.Image
		if e.Image != "" {
			prefix = e.Image + ": "
		}
	}
	ib := t.bars[key]
	if ib == nil {
		ib = &imageBar{}
		t.bars[key] = ib
	}
	switch e.Type {
	case runtime.StepStarted:
		finishBar(ib)
		step, script := fmt.Sprintf("%s[%d/%d] %s", prefix, e.Index, e.Total, e.Title), ""
		t.set(ib, &step, &script)
		t.dmu.Lock()
		ib.start, ib.expected = e.Time, e.Expected
		*t.tailOf(key) = tail{}
		t.dmu.Unlock()
		opts := []mpb.BarOption{mpb.BarRemoveOnComplete(),
			mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
				t.dmu.Lock()
				defer t.dmu.Unlock()
				return ib.step
			}, decor.WCSyncSpaceR)),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
				t.dmu.Lock()
				defer t.dmu.Unlock()
				s := " " + clock(time.Since(ib.start))
				if ib.expected > 0 {
					s += " / ~" + clock(ib.expected)
				}
				if ib.script != "" {
					s += " " + ib.script
				}
				return s
			})),
		}
		if t.tailSize > 0 {
			rows := make([]mpb.BarFiller, t.tailSize)
			for i := range rows {
				rows[i] = t.tailRow(key, i)
			}
			opts = append(opts, mpb.BarBtmExtender(rows...))
		}
		ib.bar = t.p.New(1, mpb.SpinnerStyle(), opts...)
	case runtime.ScriptStarted:
		script := e.Script
		if e.Element != "" {
			script += " (" + e.Element + ")"
		}
		t.set(ib, nil, &script)
	case runtime.ScriptFinished:
		script := ""
		t.set(ib, nil, &script)
	case runtime.StepFinished, runtime.StepFailed:
		mark := "done"
		if e.Type == runtime.StepFailed {
			mark = "FAILED"
		}
		finishBar(ib)
		fmt.Fprintf(t.p, "%s[%d/%d] %s %s in %s\n", prefix, e.Index, e.Total, e.Title, mark, e.Duration.Round(100*time.Millisecond))
		if e.Type == runtime.StepFailed { // the last lines it wrote stay
			t.dmu.Lock()
			lines := append([]string(nil), t.tailOf(key).lines...)
			t.dmu.Unlock()
			for _, l := range lines {
				fmt.Fprintf(t.p, "%s  │ %s\n", prefix, l)
			}
		}
	case runtime.StepCached:
		fmt.Fprintf(t.p, "%s[%d/%d] %s cached\n", prefix, e.Index, e.Total, e.Title)
	case runtime.StepWaiting:
		fmt.Fprintf(t.p, "%s[%d/%d] %s: waiting for %s, which runs it\n", prefix, e.Index, e.Total, e.Title, e.Holder)
	case runtime.BuildFinished:
		finishBar(ib)
		fmt.Fprintf(t.p, "%sbuild finished in %s\n", prefix, e.Duration.Round(time.Second))
	case runtime.BuildFailed:
		finishBar(ib)
		fmt.Fprintf(t.p, "%sbuild failed: %s\n", prefix, e.Error)
		if e.LogPath != "" {
			fmt.Fprintf(t.p, "%s  the full output is in %s\n", prefix, e.LogPath)
		}
	case runtime.LockWaiting:
		fmt.Fprintf(t.p, "%swaiting for %s (another build holds %s)\n", prefix, e.Holder, e.LockPath)
	case runtime.Breakpoint:
		fmt.Fprintf(t.p, "%sbreakpoint %s at step %q: exit the shell to continue\n", prefix, e.Reason, e.Title)
	case runtime.CachePulled, runtime.CachePushed:
		fmt.Fprintf(t.p, "%s%s: %s\n", prefix, e.Title, e.Reason)
	case runtime.CacheCorrupt, runtime.CacheRemoteError:
		fmt.Fprintf(t.p, "%s%s\n", prefix, e.Error)
	}
}

// finishBar completes a running step's spinner, which removes it.
func finishBar(ib *imageBar) {
	if ib.bar != nil {
		ib.bar.SetCurrent(1)
		ib.bar = nil
	}
}

// Close ends the drawing and waits until it is on the terminal.
func (t *Terminal) Close() {
	t.mu.Lock()
	for _, ib := range t.bars {
		finishBar(ib)
	}
	t.closed = true
	t.mu.Unlock()
	t.p.Wait()
}
