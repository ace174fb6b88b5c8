// Package shell is the only place in dib that starts processes. Every
// command goes through Runner.Run, which
//
//   - refuses tools absent from the plan's host-tool list (when one is given),
//   - logs the argv with secrets redacted (-x), or only prints it (-n),
//   - streams the combined stdout/stderr line by line with a prefix
//     ("element/script | line"), redacted, to the console and a log,
//   - keeps the last lines for the failure diagnostic,
//   - times the command,
//   - on cancellation sends SIGTERM to the whole process group and, after
//     WaitDelay, SIGKILL; after the command ends, any process left in its
//     group is killed so nothing outlives its step.
package shell

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dibuild/dib/runtime/cgroup"
)

// Defaults for Runner fields left zero.
const (
	DefaultWaitDelay = 10 * time.Second
	DefaultTailLines = 40
)

// Runner runs commands. The zero value runs anything, streams nowhere and
// keeps DefaultTailLines lines.
type Runner struct {
	// Out receives every output line, prefixed and redacted (the console).
	Out io.Writer
	// Redactor hides secret values in argv and output.
	Redactor *Redactor
	// AllowedTools, when non-nil, lists the host tools (base names, or
	// absolute paths) commands may start; others are refused before running.
	AllowedTools []string
	// DryRun prints each command ("+ argv") to Out and does not run it (-n).
	DryRun bool
	// Trace prints each command to Out before running it (-x).
	Trace bool
	// WaitDelay bounds how long Run waits after SIGTERM, and for pipes held
	// open by a daemon the command left behind.
	WaitDelay time.Duration
	// TailLines is how many final output lines an error keeps.
	TailLines int
	// Marker, when set (KEY=VALUE), is added to the environment of every
	// command, so that KillMarked finds whatever they leave running,
	// even in another session (setsid) or process group.
	Marker string
	// Cgroup, when set, is the group every command starts in, so that
	// killing it stops whatever the commands left, even a process that
	// cleared its environment (and so the Marker).
	Cgroup *cgroup.Group
}

// Command is one process to run.
type Command struct {
	Argv []string
	// Env is the complete environment; nil inherits dib's own.
	Env []string
	Dir string
	// Prefix is written before every output line as "Prefix | " (empty: none).
	Prefix string
	// Stdin feeds the command; nil is /dev/null.
	Stdin io.Reader
	// Stdout, when set, receives the command's standard output (its
	// standard error still goes to the log).
	Stdout io.Writer
	// Log receives the same lines as Runner.Out (a per-step log file).
	Log io.Writer
	// Interactive runs the command in dib's process group with the
	// terminal as its stdio (breakpoint shells); output is not captured.
	Interactive bool
}

// Result describes a finished command.
type Result struct {
	Duration time.Duration
	ExitCode int
	// Tail holds the last output lines, redacted.
	Tail []string
}

// ExitError is returned when a command fails to start or exits non-zero.
type ExitError struct {
	Argv     []string // redacted
	Prefix   string
	ExitCode int // -1 when killed by a signal or never started
	Duration time.Duration
	Tail     []string
	Err      error
}

func (e *ExitError) Error() string {
	var b strings.Builder
	if e.Prefix != "" {
		fmt.Fprintf(&b, "%s: ", e.Prefix)
	}
	fmt.Fprintf(&b, "%s: %v", Quote(e.Argv), e.Err)
	if len(e.Tail) > 0 {
		b.WriteString("\nlast output lines:")
		for _, l := range e.Tail {
			b.WriteString("\n  ")
			b.WriteString(l)
		}
	}
	return b.String()
}

func (e *ExitError) Unwrap() error { return e.Err }

// ErrToolNotAllowed is wrapped by the error Run returns for a refused tool.
var ErrToolNotAllowed = errors.New("host tool not in the plan's host-tool list")

// Allowed reports whether argv0 may be run under AllowedTools.
func (r *Runner) Allowed(argv0 string) bool {
	if r.AllowedTools == nil {
		return true
	}
	for _, t := range r.AllowedTools {
		if t == argv0 || t == filepath.Base(argv0) {
			return true
		}
	}
	return false
}

// Run runs c and waits for it. A non-nil error is an *ExitError (or wraps
// ErrToolNotAllowed / the context error).
func (r *Runner) Run(ctx context.Context, c Command) (Result, error) {
	if len(c.Argv) == 0 {
		return Result{}, errors.New("shell: empty command")
	}
	red := r.Redactor
	argv := red.RedactAll(c.Argv)
	if !r.Allowed(c.Argv[0]) {
		return Result{ExitCode: -1}, &ExitError{Argv: argv, Prefix: c.Prefix, ExitCode: -1,
			Err: fmt.Errorf("%w: %s", ErrToolNotAllowed, c.Argv[0])}
	}
	out := newLineSink(r.Out, c.Log, c.Prefix, red, r.tailLines())
	if r.DryRun || r.Trace {
		out.note("+ " + Quote(argv))
	}
	if r.DryRun {
		return Result{}, nil
	}

	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Env = r.env(c.Env)
	cmd.Dir = c.Dir
	cmd.WaitDelay = r.WaitDelay
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = DefaultWaitDelay
	}
	if c.Interactive {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.SysProcAttr = r.sysProcAttr(false)
	} else {
		cmd.Stdin = c.Stdin // nil = /dev/null
		cmd.Stdout = out
		if c.Stdout != nil {
			cmd.Stdout = c.Stdout
		}
		cmd.Stderr = out
		cmd.SysProcAttr = r.sysProcAttr(true)
		cmd.Cancel = func() error {
			// The whole group: a script's children (dpkg, apt) stop too.
			return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		}
	}

	start := time.Now()
	err := cmd.Start()
	if err != nil {
		return Result{ExitCode: -1}, &ExitError{Argv: argv, Prefix: c.Prefix, ExitCode: -1, Err: err}
	}
	err = cmd.Wait()
	if !c.Interactive {
		// Whatever the command left running in its group dies with it.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	out.flush()
	res := Result{Duration: time.Since(start), ExitCode: cmd.ProcessState.ExitCode(), Tail: out.tail()}
	if err == nil {
		return res, nil
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return res, &ExitError{Argv: argv, Prefix: c.Prefix, ExitCode: res.ExitCode,
		Duration: res.Duration, Tail: res.Tail, Err: err}
}

// Output runs c and returns its stdout (not streamed); stderr is streamed
// and kept for the diagnostic as Run does. For small queries (dpkg -l).
func (r *Runner) Output(ctx context.Context, c Command) ([]byte, error) {
	if r.DryRun {
		_, err := r.Run(ctx, c)
		return nil, err
	}
	if !r.Allowed(c.Argv[0]) {
		_, err := r.Run(ctx, c) // refused with the same error
		return nil, err
	}
	var stdout bytes.Buffer
	sink := newLineSink(r.Out, c.Log, c.Prefix, r.Redactor, r.tailLines())
	if r.Trace {
		sink.note("+ " + Quote(r.Redactor.RedactAll(c.Argv)))
	}
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Env, cmd.Dir, cmd.Stdin = r.env(c.Env), c.Dir, c.Stdin
	cmd.Stdout, cmd.Stderr = &stdout, sink
	cmd.WaitDelay = r.WaitDelay
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = DefaultWaitDelay
	}
	cmd.SysProcAttr = r.sysProcAttr(true)
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	start := time.Now()
	err := cmd.Run()
	sink.flush()
	if err != nil {
		code := -1
		if cmd.ProcessState != nil {
			code = cmd.ProcessState.ExitCode()
		}
		return stdout.Bytes(), &ExitError{Argv: r.Redactor.RedactAll(c.Argv), Prefix: c.Prefix,
			ExitCode: code, Duration: time.Since(start), Tail: sink.tail(), Err: err}
	}
	return stdout.Bytes(), nil
}

// sysProcAttr starts a command in its own process group (setpgid) and in
// the Runner's cgroup.
func (r *Runner) sysProcAttr(setpgid bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: setpgid}
	if r.Cgroup != nil {
		a.UseCgroupFD, a.CgroupFD = true, r.Cgroup.FD()
	}
	return a
}

// env is a command's environment with the Marker added.
func (r *Runner) env(env []string) []string {
	if r.Marker == "" {
		return env
	}
	if env == nil {
		env = os.Environ()
	}
	return append(env[:len(env):len(env)], r.Marker)
}

// KillMarked kills every process whose environment holds marker (a
// Runner's Marker) and waits for them to go: what a build's commands left
// running (a daemon started with setsid escapes the process-group kill).
func KillMarked(marker string) error {
	if marker == "" {
		return nil
	}
	self := os.Getpid()
	var left []int
	for attempt := 0; attempt < 50; attempt++ {
		left = marked(marker, self)
		if len(left) == 0 {
			return nil
		}
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("processes still running: %v", left)
}

// Marked lists the processes (other than this one) whose environment
// holds marker.
func Marked(marker string) []int { return marked(marker, os.Getpid()) }

// marked lists the processes (other than self) whose environment holds marker.
func marked(marker string, self int) []int {
	ents, _ := os.ReadDir("/proc")
	want := []byte(marker)
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if bytes.Equal(kv, want) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

func (r *Runner) tailLines() int {
	if r.TailLines > 0 {
		return r.TailLines
	}
	return DefaultTailLines
}

// maxLine is the longest output line kept whole; longer ones are
// written in pieces.
const maxLine = 64 << 10

// lineSink turns a byte stream into redacted, prefixed lines written to the
// console and the log, keeping the last n.
type lineSink struct {
	mu      sync.Mutex
	out     io.Writer
	log     io.Writer
	prefix  string
	red     *Redactor
	partial []byte
	ring    []string
	n       int
}

func newLineSink(out, log io.Writer, prefix string, red *Redactor, n int) *lineSink {
	if prefix != "" {
		prefix += " | "
	}
	return &lineSink{out: out, log: log, prefix: prefix, red: red, n: n}
}

func (s *lineSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.partial = append(s.partial, p...)
	for {
		i := bytes.IndexByte(s.partial, '\n')
		if i < 0 {
			break
		}
		s.emit(string(s.partial[:i]), true)
		s.partial = s.partial[i+1:]
	}
	// Keep a runaway line (no newline) from growing without bound: it is
	// written in pieces, redacted as one stream, so that a secret cut by
	// a piece's end is held back whole for the next piece.
	if len(s.partial) > maxLine {
		done, hold := s.red.RedactPrefix(string(s.partial))
		s.emitRedacted(done, true)
		s.partial = append(s.partial[:0], hold...)
	}
	return len(p), nil
}

// note writes a line of dib's own (the -x trace) without keeping it in the tail.
func (s *lineSink) note(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.emit(line, false)
}

func (s *lineSink) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.partial) > 0 {
		s.emit(string(s.partial), true)
		s.partial = nil
	}
}

func (s *lineSink) emit(line string, keep bool) {
	s.emitRedacted(s.red.Redact(strings.TrimSuffix(line, "\r")), keep)
}

// emitRedacted writes an already redacted line.
func (s *lineSink) emitRedacted(line string, keep bool) {
	full := s.prefix + line + "\n"
	if s.out != nil {
		_, _ = io.WriteString(s.out, full)
	}
	if s.log != nil {
		_, _ = io.WriteString(s.log, full)
	}
	if keep {
		s.ring = append(s.ring, line)
		if len(s.ring) > s.n {
			s.ring = s.ring[len(s.ring)-s.n:]
		}
	}
}

func (s *lineSink) tail() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ring...)
}

// Quote renders argv as a shell command line a user can paste.
func Quote(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		parts[i] = quoteArg(a)
	}
	return strings.Join(parts, " ")
}

func quoteArg(a string) string {
	if a == "" {
		return "''"
	}
	safe := true
	for _, c := range a {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./=:,+@%^", c)) {
			safe = false
			break
		}
	}
	if safe {
		return a
	}
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}
