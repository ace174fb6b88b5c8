package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
)

// measureEnv names the file a launcher writes its child's outcome to.
const measureEnv = "DIB_TEST_MEASURE"

// measured is what a launcher reports about the command it ran.
type measured struct {
	Exit   int   `json:"exit"`
	Signal int   `json:"signal"` // 0 unless killed by a signal
	MaxRSS int64 `json:"maxrss"` // bytes
}

// measureLauncher runs args as a command with this process's standard
// streams and writes its exit status and peak RSS to the file out.
//
// Why a launcher: Go starts a child with clone(CLONE_VM|CLONE_VFORK), so
// until its exec the child shares the parent's address space, and Linux
// folds that space's high-water RSS into the child's ru_maxrss at exec.
// Measured straight from the test process, every child "peaked" at the
// test binary's own high-water mark (667 MB on CI, after the end-to-end
// tests). A freshly started launcher has a high-water mark of a few MB.
func measureLauncher(out string, args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "measure launcher: no command")
		return 2
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// The command dies with the launcher (a test's timeout kills that).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		fmt.Fprintln(os.Stderr, "measure launcher:", err)
		return 2
	}
	var m measured
	st := cmd.ProcessState
	m.Exit = st.ExitCode()
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		m.Signal = int(ws.Signal())
	}
	if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
		m.MaxRSS = int64(ru.Maxrss) << 10
	}
	b, _ := json.Marshal(m)
	if err := os.WriteFile(out, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "measure launcher:", err)
		return 2
	}
	return 0
}

// runMeasured runs cmd (already given its streams, directory and
// environment) through a launcher and returns what it measured.
func runMeasured(cmd *exec.Cmd, dir string) (measured, error) {
	self, err := os.Executable()
	if err != nil {
		return measured{}, err
	}
	f, err := os.CreateTemp(dir, "measure-*.json")
	if err != nil {
		return measured{}, err
	}
	f.Close()
	defer os.Remove(f.Name())
	cmd.Args = append([]string{self}, cmd.Args...)
	cmd.Path = self
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, measureEnv+"="+f.Name())
	if err := cmd.Run(); err != nil {
		return measured{}, fmt.Errorf("launcher: %w", err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		return measured{}, err
	}
	var m measured
	if err := json.Unmarshal(b, &m); err != nil {
		return measured{}, fmt.Errorf("launcher report: %w", err)
	}
	return m, nil
}

// TestMeasuredRSSIsTheChilds: a child measured through the launcher does
// not inherit this test process's high-water RSS.
func TestMeasuredRSSIsTheChilds(t *testing.T) {
	ballast := make([]byte, 512<<20)
	for i := 0; i < len(ballast); i += 4096 {
		ballast[i] = 1
	}
	m, err := runMeasured(exec.Command("true"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	runtime.KeepAlive(ballast)
	if m.Exit != 0 || m.Signal != 0 {
		t.Fatalf("true: exit %d, signal %d", m.Exit, m.Signal)
	}
	if m.MaxRSS <= 0 || m.MaxRSS > 128<<20 {
		t.Errorf("peak RSS of true measured as %d MB (the test process holds 512 MB)", m.MaxRSS>>20)
	}
}
