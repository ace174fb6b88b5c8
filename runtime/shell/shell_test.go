package shell

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRunStreamsPrefixedRedactedLines(t *testing.T) {
	tests := []struct {
		name    string
		script  string
		prefix  string
		secrets []string
		want    string
	}{
		{name: "prefix", script: `echo one; echo two >&2; printf three`, prefix: "base/10-x",
			want: "base/10-x | one\nbase/10-x | two\nbase/10-x | three\n"},
		{name: "no prefix", script: `echo a`, want: "a\n"},
		{name: "secret", script: `echo "pw=hunter2 and hunter22"`, prefix: "p", secrets: []string{"hunter2", "hunter22"},
			want: "p | pw=<redacted> and <redacted>\n"},
		{name: "crlf", script: `printf 'x\r\n'`, want: "x\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, log bytes.Buffer
			r := &Runner{Out: &out, Redactor: NewRedactor(tt.secrets...)}
			res, err := r.Run(context.Background(), Command{Argv: []string{"sh", "-c", tt.script}, Prefix: tt.prefix, Log: &log})
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want || log.String() != tt.want {
				t.Errorf("out %q log %q, want %q", out.String(), log.String(), tt.want)
			}
			if res.ExitCode != 0 || res.Duration <= 0 {
				t.Errorf("result %+v", res)
			}
		})
	}
}

func TestRunFailureKeepsTail(t *testing.T) {
	r := &Runner{TailLines: 2, Redactor: NewRedactor("s3cret")}
	_, err := r.Run(context.Background(), Command{
		Argv:   []string{"sh", "-c", `echo 1; echo 2; echo s3cret; exit 3`, "s3cret"},
		Prefix: "el/20-fail",
	})
	var ee *ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("want *ExitError, got %v", err)
	}
	if ee.ExitCode != 3 {
		t.Errorf("exit code %d", ee.ExitCode)
	}
	if !reflect.DeepEqual(ee.Tail, []string{"2", "<redacted>"}) {
		t.Errorf("tail %q", ee.Tail)
	}
	msg := err.Error()
	if strings.Contains(msg, "s3cret") || !strings.Contains(msg, "el/20-fail") || !strings.Contains(msg, "exit status 3") {
		t.Errorf("message %q", msg)
	}
}

func TestAllowedTools(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	r := &Runner{AllowedTools: []string{"true", "/bin/sh"}}
	tests := []struct {
		argv0 string
		ok    bool
	}{{"true", true}, {"/usr/bin/true", true}, {"/bin/sh", true}, {"touch", false}, {"sh", false}}
	for _, tt := range tests {
		t.Run(tt.argv0, func(t *testing.T) {
			if got := r.Allowed(tt.argv0); got != tt.ok {
				t.Errorf("Allowed(%q) = %v", tt.argv0, got)
			}
		})
	}
	_, err := r.Run(context.Background(), Command{Argv: []string{"touch", marker}})
	if !errors.Is(err, ErrToolNotAllowed) {
		t.Fatalf("want ErrToolNotAllowed, got %v", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("refused tool ran")
	}
}

func TestDryRunAndTrace(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range []string{"dry-run", "trace"} {
		t.Run(mode, func(t *testing.T) {
			marker := filepath.Join(dir, mode)
			var out bytes.Buffer
			r := &Runner{Out: &out, DryRun: mode == "dry-run", Trace: mode == "trace", Redactor: NewRedactor("tok")}
			if _, err := r.Run(context.Background(), Command{Argv: []string{"sh", "-c", "touch " + marker + " # tok"}}); err != nil {
				t.Fatal(err)
			}
			wantLine := "+ sh -c 'touch " + marker + " # <redacted>'\n"
			if out.String() != wantLine {
				t.Errorf("out %q, want %q", out.String(), wantLine)
			}
			_, err := os.Stat(marker)
			if ran := err == nil; ran != (mode == "trace") {
				t.Errorf("ran = %v", ran)
			}
		})
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// A zombie is dead for our purposes.
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

func TestCancelKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	r := &Runner{WaitDelay: time.Second}
	start := time.Now()
	_, err := r.Run(ctx, Command{Argv: []string{"sh", "-c", `sleep 60 & echo $! > ` + pidFile + `; wait`}})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want deadline error, got %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Error("Run did not return promptly after cancellation")
	}
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid == 0 {
		t.Fatal("no child pid")
	}
	time.Sleep(50 * time.Millisecond)
	if alive(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("child %d survived cancellation", pid)
	}
}

func TestLeftoverDaemonDoesNotHangOrSurvive(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	r := &Runner{WaitDelay: 200 * time.Millisecond}
	// The background sleep keeps the output pipe open after sh exits.
	res, err := r.Run(context.Background(), Command{Argv: []string{"sh", "-c", `sleep 60 & echo $! > ` + pidFile + `; echo started`}})
	if err != nil && !strings.Contains(err.Error(), "I/O") {
		t.Fatalf("unexpected error %v", err)
	}
	_ = res
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	time.Sleep(50 * time.Millisecond)
	if pid == 0 || alive(pid) {
		if pid != 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		t.Errorf("leftover process %d survived its command", pid)
	}
}

func TestOutput(t *testing.T) {
	var out bytes.Buffer
	r := &Runner{Out: &out}
	b, err := r.Output(context.Background(), Command{Argv: []string{"sh", "-c", "echo data; echo diag >&2"}, Prefix: "q"})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "data\n" || out.String() != "q | diag\n" {
		t.Errorf("stdout %q console %q", b, out.String())
	}
}

func TestStartFailure(t *testing.T) {
	r := &Runner{}
	_, err := r.Run(context.Background(), Command{Argv: []string{"/nonexistent/tool"}})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.ExitCode != -1 {
		t.Fatalf("got %v", err)
	}
}

func TestQuote(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{[]string{"mmdebstrap", "--variant=minbase", "bookworm"}, "mmdebstrap --variant=minbase bookworm"},
		{[]string{"sh", "-c", "a b"}, "sh -c 'a b'"},
		{[]string{"echo", "it's", ""}, `echo 'it'\''s' ''`},
	}
	for _, tt := range tests {
		if got := Quote(tt.in); got != tt.want {
			t.Errorf("Quote(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRedactor(t *testing.T) {
	var nilR *Redactor
	if nilR.Redact("x") != "x" || NewRedactor().Redact("x") != "x" || NewRedactor("").Redact("x") != "x" {
		t.Error("empty redactor changed input")
	}
	if got := NewRedactor("ab", "abc").Redact("abcd ab"); got != "<redacted>d <redacted>" {
		t.Errorf("got %q", got)
	}
}

// TestKillMarked: a daemon that left the command's process group and
// session is found by the marker and killed.
func TestKillMarked(t *testing.T) {
	marker := "DIB_BUILD_ID=test-" + strconv.Itoa(os.Getpid())
	r := &Runner{Marker: marker}
	if _, err := r.Run(context.Background(), Command{Argv: []string{"sh", "-c", "setsid sleep 300 >/dev/null 2>&1 </dev/null & sleep 0.3"}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if len(marked(marker, os.Getpid())) != 1 {
		t.Fatalf("daemon not found by its marker")
	}
	if err := KillMarked(marker); err != nil {
		t.Fatal(err)
	}
	if left := marked(marker, os.Getpid()); len(left) != 0 {
		t.Fatalf("left running: %v", left)
	}
}
