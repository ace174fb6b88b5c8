package progress

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/runtime"
)

// The plain views of a build's events: JSON lines and text lines, for logs
// and for terminals that are not drawn on.

// JSON writes one JSON object per line per event (`dib apply --json`).
func JSON(w io.Writer) runtime.Observer {
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	return runtime.ObserverFunc(func(e runtime.Event) {
		mu.Lock()
		defer mu.Unlock()
		e.Seconds = e.Duration.Seconds()
		e.ExpectedSeconds = e.Expected.Seconds()
		_ = enc.Encode(e)
	})
}

// Text writes one line per step and script: plain lines suited to logs
// and terminals alike.
func Text(w io.Writer) runtime.Observer { return text(w, false) }

// ImagesText is Text for several builds at once: each line starts with the
// name of the image it is about, "[web] ".
func ImagesText(w io.Writer) runtime.Observer { return text(w, true) }

func text(out io.Writer, images bool) runtime.Observer {
	var mu sync.Mutex
	return runtime.ObserverFunc(func(e runtime.Event) {
		mu.Lock()
		defer mu.Unlock()
		w := out
		if images && e.Image != "" {
			w = &prefixWriter{w: out, prefix: "[" + e.Image + "] "}
		}
		switch e.Type {
		case runtime.Reclaimed:
			fmt.Fprintf(w, "==> a killed build (%s) left %d things behind; reclaimed:\n", e.Build, len(e.Reclaimed))
			for _, r := range e.Reclaimed {
				fmt.Fprintf(w, "    %s\n", r)
			}
			if e.Error != "" {
				fmt.Fprintf(w, "!!! not reclaimed: %s\n", e.Error)
			}
		case runtime.LockWaiting:
			fmt.Fprintf(w, "==> waiting for %s to finish with this output directory (lock %s)\n", e.Holder, e.LockPath)
		case runtime.BuildStarted:
			fmt.Fprintf(w, "==> building plan %s (%d steps), log: %s\n", plan.ShortID(e.Plan), e.Total, e.LogPath)
		case runtime.StepStarted:
			fmt.Fprintf(w, "==> [%d/%d] %s (%s)\n", e.Index, e.Total, e.Title, plan.ShortID(e.Step))
		case runtime.StepFinished:
			fmt.Fprintf(w, "    [%d/%d] %s done in %s\n", e.Index, e.Total, e.Title, e.Duration.Round(time.Millisecond))
		case runtime.StepFailed:
			fmt.Fprintf(w, "!!! [%d/%d] %s failed after %s\n", e.Index, e.Total, e.Title, e.Duration.Round(time.Millisecond))
		case runtime.StepCached:
			fmt.Fprintf(w, "    [%d/%d] %s: %s\n", e.Index, e.Total, e.Title, e.Reason)
		case runtime.CachePulled, runtime.CachePushed:
			fmt.Fprintf(w, "    %s: %s\n", e.Title, e.Reason)
		case runtime.CacheRemoteError:
			fmt.Fprintf(w, "==> %s\n", e.Error)
		case runtime.CacheWait, runtime.CacheCorrupt:
			msg := e.Title
			if e.Error != "" {
				msg = e.Error
			}
			fmt.Fprintf(w, "==> %s\n", msg)
		case runtime.StepWaiting:
			fmt.Fprintf(w, "==> [%d/%d] %s: waiting for the build of %s, which runs it\n", e.Index, e.Total, e.Title, e.Holder)
		case runtime.ScriptFinished:
			fmt.Fprintf(w, "    %s/%s: %s\n", e.Element, e.Script, e.Duration.Round(time.Millisecond))
		case runtime.BuildFinished:
			fmt.Fprintf(w, "==> build finished in %s\n", e.Duration.Round(time.Millisecond))
		case runtime.Breakpoint:
			fmt.Fprintf(w, "dib: breakpoint %s at step %q: exit the shell to continue\n", e.Reason, e.Title)
		case runtime.BuildFailed:
			fmt.Fprintf(w, "!!! build failed after %s; log: %s\n", e.Duration.Round(time.Millisecond), e.LogPath)
		}
	})
}

// prefixWriter starts every line written through it with prefix; each
// event's text is written whole (Fprintf), so lines are never split.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	lines := strings.SplitAfter(string(b), "\n")
	var sb strings.Builder
	for _, l := range lines {
		if l != "" {
			sb.WriteString(p.prefix + l)
		}
	}
	if _, err := io.WriteString(p.w, sb.String()); err != nil {
		return 0, err
	}
	return len(b), nil
}
