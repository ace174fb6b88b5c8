package runtime

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Event types.
const (
	BuildStarted   = "build-started"
	BuildFinished  = "build-finished"
	BuildFailed    = "build-failed"
	StepStarted    = "step-started"
	StepFinished   = "step-finished"
	StepFailed     = "step-failed"
	ScriptStarted  = "script-started"
	ScriptFinished = "script-finished"
	ScriptFailed   = "script-failed"
	// LockWaiting: another build holds the output directory; this one
	// waits for it (Holder says who, LockPath where).
	LockWaiting = "lock-waiting"
	// Reclaimed: what a killed build (Build) left was reclaimed.
	Reclaimed = "reclaimed"
	// StepWaiting: another build of this process (Holder, an image) runs
	// the steps up to Step, which this build shares; it waits for their
	// cache entry instead of running them too (Options.Flights).
	StepWaiting = "step-waiting"
)

// Event is one progress report of Apply, keyed by the plan's step ID.
type Event struct {
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	// Image is the name of the image the build makes.
	Image string `json:"image,omitempty"`
	Plan  string `json:"plan_id,omitempty"`
	Step  string `json:"step_id,omitempty"`
	Kind  string `json:"kind,omitempty"`
	Title string `json:"title,omitempty"`
	// Index is the 1-based position of the step among Total steps.
	Index int `json:"index,omitempty"`
	Total int `json:"total,omitempty"`
	// Phase, Element and Script are set for script events.
	Phase   string `json:"phase,omitempty"`
	Element string `json:"element,omitempty"`
	Script  string `json:"script,omitempty"`
	// Duration of the finished step, script or build.
	Duration time.Duration `json:"-"`
	Seconds  float64       `json:"seconds,omitempty"`
	// Expected is, for step-started, how long the step took when it was
	// last built (the build cache's record; 0: unknown).
	Expected        time.Duration `json:"-"`
	ExpectedSeconds float64       `json:"expected_seconds,omitempty"`
	LogPath         string        `json:"log_path,omitempty"`
	LockPath        string        `json:"lock_path,omitempty"`
	Holder          string        `json:"holder,omitempty"`
	// Build and Reclaimed are set for Reclaimed events.
	Build     string   `json:"build,omitempty"`
	Reclaimed []string `json:"reclaimed,omitempty"`
	Error     string   `json:"error,omitempty"`
	// Reason says why a step was not run (step-cached).
	Reason string `json:"reason,omitempty"`
}

// Observer receives Apply's events, in order, from one goroutine at a time.
type Observer interface {
	Event(Event)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(Event)

// Event calls f.
func (f ObserverFunc) Event(e Event) { f(e) }

// JSONObserver writes one JSON object per line per event (`dib apply --json`).
func JSONObserver(w io.Writer) Observer {
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	return ObserverFunc(func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		e.Seconds = e.Duration.Seconds()
		e.ExpectedSeconds = e.Expected.Seconds()
		_ = enc.Encode(e)
	})
}

// TextObserver writes one line per step and script: plain lines suited to
// logs and terminals alike.
func TextObserver(w io.Writer) Observer { return textObserver(w, false) }

// ImagesTextObserver is TextObserver for several builds at once: each line
// starts with the name of the image it is about, "[web] ".
func ImagesTextObserver(w io.Writer) Observer { return textObserver(w, true) }

func textObserver(out io.Writer, images bool) Observer {
	var mu sync.Mutex
	return ObserverFunc(func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		w := out
		if images && e.Image != "" {
			w = &prefixWriter{w: out, prefix: "[" + e.Image + "] "}
		}
		switch e.Type {
		case Reclaimed:
			fmt.Fprintf(w, "==> a killed build (%s) left %d things behind; reclaimed:\n", e.Build, len(e.Reclaimed))
			for _, r := range e.Reclaimed {
				fmt.Fprintf(w, "    %s\n", r)
			}
			if e.Error != "" {
				fmt.Fprintf(w, "!!! not reclaimed: %s\n", e.Error)
			}
		case LockWaiting:
			fmt.Fprintf(w, "==> waiting for %s to finish with this output directory (lock %s)\n", e.Holder, e.LockPath)
		case BuildStarted:
			fmt.Fprintf(w, "==> building plan %s (%d steps), log: %s\n", shortID(e.Plan), e.Total, e.LogPath)
		case StepStarted:
			fmt.Fprintf(w, "==> [%d/%d] %s (%s)\n", e.Index, e.Total, e.Title, shortID(e.Step))
		case StepFinished:
			fmt.Fprintf(w, "    [%d/%d] %s done in %s\n", e.Index, e.Total, e.Title, e.Duration.Round(time.Millisecond))
		case StepFailed:
			fmt.Fprintf(w, "!!! [%d/%d] %s failed after %s\n", e.Index, e.Total, e.Title, e.Duration.Round(time.Millisecond))
		case StepCached:
			fmt.Fprintf(w, "    [%d/%d] %s: %s\n", e.Index, e.Total, e.Title, e.Reason)
		case CachePulled, CachePushed:
			fmt.Fprintf(w, "    %s: %s\n", e.Title, e.Reason)
		case CacheRemoteError:
			fmt.Fprintf(w, "==> %s\n", e.Error)
		case CacheWait, CacheCorrupt:
			msg := e.Title
			if e.Error != "" {
				msg = e.Error
			}
			fmt.Fprintf(w, "==> %s\n", msg)
		case StepWaiting:
			fmt.Fprintf(w, "==> [%d/%d] %s: waiting for the build of %s, which runs it\n", e.Index, e.Total, e.Title, e.Holder)
		case ScriptFinished:
			fmt.Fprintf(w, "    %s/%s: %s\n", e.Element, e.Script, e.Duration.Round(time.Millisecond))
		case BuildFinished:
			fmt.Fprintf(w, "==> build finished in %s\n", e.Duration.Round(time.Millisecond))
		case BuildFailed:
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

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
