package runtime

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dibuild/dib/runtime/ledger"
)

// killPlanScripts: root.d makes a tree with a 200 MB file (so the tar
// output takes a moment), post-root.d starts a daemon in its own session
// with an empty environment (so without the build's marker: only the
// build's cgroup finds it), records its pid and, in the phase kill case,
// waits.
func killPlanScripts(pidFile string, wait bool) map[string]string {
	post := "#!/bin/sh\nsetsid env -i sleep 300 >/dev/null 2>&1 </dev/null &\necho $! > " + pidFile + "\necho in-phase\n"
	if wait {
		post += "sleep 300\n"
	}
	return map[string]string{
		"root.d/10-make":      rootD + "head -c 100M /dev/zero > \"$TARGET_ROOT/big\"\n",
		"post-root.d/10-wait": post,
	}
}

// TestKilledBuildReclaimed kills a build (the process and its group, with
// SIGKILL: no cleanup runs) in a phase and while it writes its output,
// then reclaims: nothing is left but the log, in the output directory,
// the work directory and the process table.
func TestKilledBuildReclaimed(t *testing.T) {
	if out := os.Getenv("DIB_KILL_TEST_OUT"); out != "" {
		wait := os.Getenv("DIB_KILL_TEST_WAIT") == "1"
		p := hostPlan(killPlanScripts(os.Getenv("DIB_KILL_TEST_PIDFILE"), wait), []string{"root.d/10-make", "post-root.d/10-wait"})
		err := Apply(context.Background(), p, Options{OutputDir: out, WorkDir: os.Getenv("DIB_KILL_TEST_WORK"), NoTmpfs: true,
			Secrets: map[string]string{"DIB_PASSWORD": "x"}, Getenv: func(string) string { return "" }})
		if err != nil {
			os.Exit(3)
		}
		os.Exit(0)
	}
	requireGNUTar(t)
	if testing.Short() {
		t.Skip("writes 200 MB")
	}
	for _, tc := range []struct {
		name  string
		wait  bool
		ready func(out string) bool
	}{
		{"in a phase", true, func(out string) bool {
			b, _ := os.ReadFile(filepath.Join(out, "img.log"))
			return strings.Contains(string(b), "in-phase")
		}},
		{"writing the output", false, func(out string) bool {
			m, _ := filepath.Glob(filepath.Join(out, ".img.tar.dibtmp-*"))
			if len(m) == 0 {
				return false
			}
			fi, err := os.Stat(m[0])
			return err == nil && fi.Size() > 1<<20
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out, work, pidFile := filepath.Join(dir, "out"), filepath.Join(dir, "work"), filepath.Join(dir, "daemon.pid")
			cmd := exec.Command(os.Args[0], "-test.run=^TestKilledBuildReclaimed$")
			cmd.Env = append(os.Environ(), "DIB_KILL_TEST_OUT="+out, "DIB_KILL_TEST_WORK="+work, "DIB_KILL_TEST_PIDFILE="+pidFile,
				"DIB_KILL_TEST_WAIT="+map[bool]string{true: "1"}[tc.wait])
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(60 * time.Second)
			for !tc.ready(out) {
				if time.Now().After(deadline) {
					syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
					cmd.Wait()
					t.Fatal("the build never reached the kill point")
				}
				time.Sleep(10 * time.Millisecond)
			}
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
			if _, err := os.Stat(filepath.Join(StateDir(out), "ledger")); err != nil {
				t.Fatalf("the killed build left no ledger: %v", err)
			}
			var reclaimed []string
			if err := Reclaim(context.Background(), out, true, ObserverFunc(func(e Event) {
				if e.Type == Reclaimed {
					reclaimed = append(reclaimed, e.Reclaimed...)
					if e.Error != "" {
						t.Errorf("reclaim error: %s", e.Error)
					}
				}
			})); err != nil {
				t.Fatal(err)
			}
			t.Logf("reclaimed:\n  %s", strings.Join(reclaimed, "\n  "))
			if ents, _ := os.ReadDir(out); len(ents) != 1 || ents[0].Name() != "img.log" {
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Errorf("output dir holds %v", names)
			}
			if ents, _ := os.ReadDir(work); len(ents) != 0 {
				t.Errorf("work dir holds %d entries (%s…)", len(ents), ents[0].Name())
			}
			b, _ := os.ReadFile(pidFile)
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
				t.Errorf("no daemon pid: %q", b)
			} else if st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil && !strings.Contains(string(st), ") Z ") {
				t.Errorf("the build's daemon (pid %d) still runs", pid)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		})
	}
}

// TestApplyReclaimsFirst: the next apply into an output directory
// reclaims what a killed build left there, and says so.
func TestApplyReclaimsFirst(t *testing.T) {
	requireGNUTar(t)
	out, work := t.TempDir(), t.TempDir()
	left := filepath.Join(work, "dib_build.killed")
	if err := os.MkdirAll(filepath.Join(left, "built"), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(StateDir(out), "killed-build")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Record(ledger.Entry{Kind: ledger.Dir, Path: left}); err != nil {
		t.Fatal(err)
	}
	// Not closed: its build was killed.
	var got []Event
	p := hostPlan(map[string]string{"root.d/10-make": rootD}, []string{"root.d/10-make"})
	err = Apply(context.Background(), p, Options{OutputDir: out, WorkDir: work, NoTmpfs: true,
		Secrets: map[string]string{"DIB_PASSWORD": "x"}, Getenv: func(string) string { return "" },
		Observer: ObserverFunc(func(e Event) {
			if e.Type == Reclaimed {
				got = append(got, e)
			}
		})})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Build != "killed-build" || len(got[0].Reclaimed) != 1 || got[0].Reclaimed[0] != "removed "+left {
		t.Fatalf("reclaimed events: %+v", got)
	}
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("%s left: %v", left, err)
	}
	if _, err := os.Stat(StateDir(out)); !os.IsNotExist(err) {
		t.Errorf("state dir left after a good build: %v", err)
	}
}
