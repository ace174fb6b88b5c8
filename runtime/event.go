package runtime

import "time"

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
	// Breakpoint: an interactive shell opens at a DIB breakpoint (Reason
	// names it) before or after step Title; the build goes on when it
	// exits.
	Breakpoint = "breakpoint"
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
