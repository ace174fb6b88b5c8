// Package phase runs one DIB phase (root.d … cleanup.d) as
// diskimage-builder's dib-run-parts does, but from Go, so each script is
// timed, its output is prefixed "element/script |", and a failure names
// the phase, element, script and log.
//
// Each script is started as
//
//	bash -c "source ENV1; source ENV2; …; exec SCRIPT"
//
// (on the host), or the same under `chroot TARGET_ROOT` with the hook tree
// at /tmp/in_target.d, so every script sees the phase's environment.d files
// sourced in the plan's order, and only what they export, exactly as it
// would under dib-run-parts.
package phase

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/dibuild/dib/runtime/shell"
	"github.com/dibuild/dib/spec/diag"
)

// InTarget is where the hook tree is seen from inside the chroot.
const InTarget = "/tmp/in_target.d"

// Where a phase runs.
const (
	Host   = "host"
	Chroot = "chroot"
)

// Script is one hook to run.
type Script struct {
	Element string
	Name    string
	Path    string // slash-separated, relative to the hook tree: "install.d/10-foo"
}

// EnvFile is one environment.d file to source before each script.
type EnvFile struct {
	Element string
	Name    string
	Path    string // relative to the hook tree: "environment.d/10-foo.bash"
}

// Phase is one phase to run.
type Phase struct {
	Name         string // "install.d"
	Where        string // Host or Chroot
	EnvironmentD []EnvFile
	Scripts      []Script
}

// Timing records how long one script took.
type Timing struct {
	Element, Script string
	Duration        time.Duration
}

// Observer hears about scripts as they run; nil is fine.
type Observer interface {
	ScriptStarted(phase string, s Script)
	ScriptFinished(phase string, s Script, d time.Duration, err error)
}

// Runner runs phases of one build.
type Runner struct {
	Shell      *shell.Runner
	HooksPath  string // the hook tree on the host ($TMP_HOOKS_PATH)
	TargetRoot string // the chroot ($TARGET_ROOT)
	// HostEnv and ChrootEnv are the complete environments (KEY=VALUE) of
	// host-side and in-chroot scripts.
	HostEnv   []string
	ChrootEnv []string
	// Log receives every output line; LogPath names it in diagnostics.
	Log      io.Writer
	LogPath  string
	Observer Observer
}

// Error is a failed script: it says which phase, element and script, how
// long it ran, its last output lines and where the full log is.
type Error struct {
	Phase, Element, Script string
	LogPath                string
	Duration               time.Duration
	Err                    error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s: script %s of element %s failed after %s: %v",
		e.Phase, e.Script, e.Element, e.Duration.Round(time.Millisecond), e.Err)
	if e.LogPath != "" {
		msg += "\nfull log: " + e.LogPath
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Diagnostic renders the failure as dib's diagnostic type.
func (e *Error) Diagnostic() diag.Diagnostic {
	d := diag.Errorf("%s failed in %s", e.Script, e.Phase).WithSubject(e.Element + "/" + e.Script)
	var ee *shell.ExitError
	if errors.As(e.Err, &ee) {
		d.Message += fmt.Sprintf(" (exit status %d)", ee.ExitCode)
		if len(ee.Tail) > 0 {
			d.Message += ":\n  " + strings.Join(ee.Tail, "\n  ")
		}
	} else {
		d.Message += ": " + e.Err.Error()
	}
	if e.LogPath != "" {
		return d.WithHint("the full output is in %s", e.LogPath)
	}
	return d
}

// Argv returns the command line that runs s of phase p: a bash that sources
// the environment.d files then execs the script, under chroot if p runs there.
func (r *Runner) Argv(p Phase, s Script) []string {
	base := r.HooksPath
	if p.Where == Chroot {
		base = InTarget
	}
	var b strings.Builder
	for _, f := range p.EnvironmentD {
		fmt.Fprintf(&b, "source %s || exit $?; ", quote(path.Join(base, f.Path)))
	}
	b.WriteString("exec " + quote(path.Join(base, s.Path)))
	argv := []string{"bash", "-c", b.String()}
	if p.Where == Chroot {
		argv = append([]string{"chroot", r.TargetRoot}, argv...)
	}
	return argv
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Run runs the scripts of p in order and stops at the first failure, which
// is returned as *Error. It returns the timing of every script run.
func (r *Runner) Run(ctx context.Context, p Phase) ([]Timing, error) {
	if p.Where != Host && p.Where != Chroot {
		return nil, fmt.Errorf("phase %s: unknown location %q", p.Name, p.Where)
	}
	// Scripts run in dib's working directory, as under DIB's dib-run-parts
	// (chroot(1) itself changes to / inside the tree).
	env := r.HostEnv
	if p.Where == Chroot {
		env = r.ChrootEnv
	}
	var times []Timing
	for _, s := range p.Scripts {
		if err := ctx.Err(); err != nil {
			return times, err
		}
		if r.Observer != nil {
			r.Observer.ScriptStarted(p.Name, s)
		}
		c := shell.Command{
			Argv:   r.Argv(p, s),
			Env:    env,
			Prefix: s.Element + "/" + s.Name,
			Log:    r.Log,
		}
		res, err := r.Shell.Run(ctx, c)
		times = append(times, Timing{Element: s.Element, Script: s.Name, Duration: res.Duration})
		if err != nil {
			err = &Error{Phase: p.Name, Element: s.Element, Script: s.Name, LogPath: r.LogPath, Duration: res.Duration, Err: err}
		}
		if r.Observer != nil {
			r.Observer.ScriptFinished(p.Name, s, res.Duration, err)
		}
		if err != nil {
			return times, err
		}
	}
	return times, nil
}
