package cgroup

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dibuild/dib/runtime/ns/nstest"
)

// newGroup creates a test group, or skips where cgroup v2 is not
// writable (fails in CI, where it must be).
func newGroup(t *testing.T) *Group {
	t.Helper()
	nstest.RequireRoot(t)
	path, err := PathFor("dib-test-" + strconv.Itoa(os.Getpid()) + "-" + strings.ReplaceAll(t.Name(), "/", "-"))
	if err == nil {
		var g *Group
		if g, err = Create(path); err == nil {
			t.Cleanup(func() { _ = g.Close() })
			return g
		}
	}
	if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
		t.Fatal(err)
	}
	t.Skip(err)
	return nil
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || !strings.HasPrefix(s[i+1:], " Z")
}

// TestKillTakesEscapedProcesses: a process that left its session and
// cleared its environment, started by a command in the group, is in the
// group, and Kill stops it and removes the group.
func TestKillTakesEscapedProcesses(t *testing.T) {
	g := newGroup(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	cmd := exec.Command("sh", "-c", `setsid env -i sleep 300 </dev/null >/dev/null 2>&1 & echo $! > "$1"`, "sh", pidFile)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: g.FD()}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	procs, err := os.ReadFile(filepath.Join(g.Path, "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains("\n"+string(procs), "\n"+strconv.Itoa(pid)+"\n") {
		t.Fatalf("escaped process %d is not in the group (procs: %q)", pid, procs)
	}
	n, err := Kill(g.Path)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("Kill reported %d processes, want 1", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(pid) {
		t.Fatalf("process %d still running after Kill", pid)
	}
	if _, err := os.Stat(g.Path); !os.IsNotExist(err) {
		t.Errorf("group %s not removed: %v", g.Path, err)
	}
	if n, err := Kill(g.Path); n != 0 || err != nil {
		t.Errorf("Kill of a removed group: %d, %v", n, err)
	}
}

func TestPathForRefusesBadNames(t *testing.T) {
	for _, name := range []string{"", ".", "..", "a/b", "a\x00"} {
		if _, err := PathFor(name); err == nil {
			t.Errorf("PathFor(%q) accepted", name)
		}
	}
}
