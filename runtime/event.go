package runtime

import (
	"encoding/json"
	"fmt"
	"io"
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
)

// Event is one progress report of Apply, keyed by the plan's step ID.
type Event struct {
	Type  string    `json:"type"`
	Time  time.Time `json:"time"`
	Plan  string    `json:"plan_id,omitempty"`
	Step  string    `json:"step_id,omitempty"`
	Kind  string    `json:"kind,omitempty"`
	Title string    `json:"title,omitempty"`
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
	LogPath  string        `json:"log_path,omitempty"`
	Error    string        `json:"error,omitempty"`
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
		_ = enc.Encode(e)
	})
}

// TextObserver writes one line per step and script: plain lines suited to
// logs and terminals alike.
func TextObserver(w io.Writer) Observer {
	var mu sync.Mutex
	return ObserverFunc(func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		switch e.Type {
		case BuildStarted:
			fmt.Fprintf(w, "==> building plan %s (%d steps), log: %s\n", shortID(e.Plan), e.Total, e.LogPath)
		case StepStarted:
			fmt.Fprintf(w, "==> [%d/%d] %s (%s)\n", e.Index, e.Total, e.Title, shortID(e.Step))
		case StepFinished:
			fmt.Fprintf(w, "    [%d/%d] %s done in %s\n", e.Index, e.Total, e.Title, e.Duration.Round(time.Millisecond))
		case StepFailed:
			fmt.Fprintf(w, "!!! [%d/%d] %s failed after %s\n", e.Index, e.Total, e.Title, e.Duration.Round(time.Millisecond))
		case ScriptFinished:
			fmt.Fprintf(w, "    %s/%s: %s\n", e.Element, e.Script, e.Duration.Round(time.Millisecond))
		case BuildFinished:
			fmt.Fprintf(w, "==> build finished in %s\n", e.Duration.Round(time.Millisecond))
		case BuildFailed:
			fmt.Fprintf(w, "!!! build failed after %s; log: %s\n", e.Duration.Round(time.Millisecond), e.LogPath)
		}
	})
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
