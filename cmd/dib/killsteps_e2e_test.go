package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dibuild/dib/runtime"
	"github.com/dibuild/dib/runtime/ledger"
	"github.com/dibuild/dib/runtime/mount"
	"github.com/dibuild/dib/runtime/shell"
)

// killDiskDibfile is a small disk build: a tree made by the OS element's
// root.d (no bootstrap), an MBR disk with one ext4 filesystem, and three
// outputs (tar of the mounted image, raw, qcow2).
const killDiskDibfile = `name: kd
distro: kill-os
elements-path: [elements]
skip-base: true
block-device: mbr
image-size: 160MiB
outputs: [tar, raw, qcow2]
`

// killOSRootD makes the tree: a few files and one of 8 MiB, so that the
// copy into the filesystem and the outputs have something to do.
const killOSRootD = `#!/bin/bash
set -eu
mkdir -p "$TARGET_ROOT"/etc "$TARGET_ROOT"/tmp "$TARGET_ROOT"/var/log "$TARGET_ROOT"/boot "$TARGET_ROOT"/usr/lib
echo kd > "$TARGET_ROOT/etc/hostname"
head -c 8M /dev/urandom > "$TARGET_ROOT/usr/lib/blob"
`

// killShimTools are the host tools the disk build runs; the test puts a
// shim of each first in dib's PATH. The shim counts its calls; at the one
// the case names it runs the real tool, then stops (the tool did its
// work, dib never hears of it) until killed.
var killShimTools = []string{"losetup", "mke2fs", "dumpe2fs", "cp", "tar", "qemu-img", "sfdisk", "mkswap", "mount", "umount"}

func writeKillShims(t *testing.T, dir, calls string, at int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tool := range killShimTools {
		real, err := exec.LookPath(tool)
		if err != nil {
			continue
		}
		script := fmt.Sprintf(`#!/bin/bash
exec 9>>%[1]q.lock
flock 9
echo "%[2]s $*" >> %[1]q
k=$(wc -l < %[1]q)
flock -u 9
exec 9>&-
if [ "$k" = %[3]d ]; then
	%[4]q "$@"
	echo "$?" > %[1]q.ready
	exec sleep 100000
fi
exec %[4]q "$@"
`, calls, tool, at, real)
		if err := os.WriteFile(filepath.Join(dir, tool), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// killLeft is what a killed build left under the test's directory, as
// seen from outside: for the log before `dib clean` and for the checks.
type killLeft struct {
	out, work, cacheTmp []string
	mounts, loops       []string
	procs               []int
	cgroup              string
}

func (l killLeft) String() string {
	var b strings.Builder
	add := func(what string, v any, n int) {
		if n > 0 {
			fmt.Fprintf(&b, " %s=%v", what, v)
		}
	}
	add("out", l.out, len(l.out))
	add("work", l.work, len(l.work))
	add("cache-tmp", l.cacheTmp, len(l.cacheTmp))
	add("mounts", l.mounts, len(l.mounts))
	add("loops", l.loops, len(l.loops))
	add("procs", l.procs, len(l.procs))
	if l.cgroup != "" {
		b.WriteString(" cgroup=" + l.cgroup)
	}
	if b.Len() == 0 {
		return " nothing"
	}
	return b.String()
}

func names(dir string) []string {
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// ledgerOf returns the marker and cgroup a killed build's ledger holds.
func ledgerOf(out string) (marker, cgroup string) {
	m, _ := filepath.Glob(filepath.Join(runtime.StateDir(out), "ledger", "*.jsonl"))
	for _, name := range m {
		b, _ := os.ReadFile(name)
		for _, line := range strings.Split(string(b), "\n") {
			var e struct{ Kind, Path, Marker string }
			if json.Unmarshal([]byte(line), &e) != nil {
				continue
			}
			if e.Marker != "" {
				marker = e.Marker
			}
			if e.Kind == "cgroup" {
				cgroup = e.Path
			}
		}
	}
	return marker, cgroup
}

func leftUnder(root, out, work, cacheDir, marker, cgroup string) killLeft {
	l := killLeft{out: names(out), work: names(work), cacheTmp: names(filepath.Join(cacheDir, "tmp"))}
	l.mounts, _ = mount.Under(root)
	l.loops = ledger.LoopsUnder(root)
	if marker != "" {
		l.procs = shell.Marked(marker)
	}
	if cgroup != "" {
		if _, err := os.Stat(cgroup); err == nil {
			l.cgroup = cgroup
		}
	}
	return l
}

// TestKilledAtEveryStep kills `dib apply` of a small disk build with
// SIGKILL at every step (when the JSON event stream says it started) and
// after every host tool it runs (partitioning, mkfs with the tree copied
// in, loop devices, outputs), then runs `dib clean`, which must leave
// only the build log: no mount, no loop device, no process, no work or
// temporary directory, no lock, no partial cache entry or output.
//
// The kill is SIGKILL to dib's process group, as `kill -9 -- -PGID` (or
// the OOM killer) would do it: dib dies, with no chance to clean up; the
// tools it runs are each in their own process group and live on, as they
// do after a real kill. (A `kill -9` of the dib a user started, which
// re-executes itself in a private mount namespace, signals the child with
// SIGTERM and it cleans up: that is not the hard case.) The killed dib
// runs in the test's mount namespace, so its mounts outlive it and
// `dib clean` must undo them too.
func TestKilledAtEveryStep(t *testing.T) {
	requireE2E(t)
	for _, tool := range []string{"mke2fs", "losetup", "qemu-img", "flock"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("needs %s", tool)
		}
	}
	dir := t.TempDir()
	el := filepath.Join(dir, "elements", "kill-os")
	if err := os.MkdirAll(filepath.Join(el, "root.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"Dibfile": killDiskDibfile, "elements/kill-os/element-provides": "operating-system\n",
		"elements/kill-os/root.d/10-tree": killOSRootD,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	type event struct {
		Type  string `json:"type"`
		Index int    `json:"index"`
		Title string `json:"title"`
	}
	// apply starts dib apply for one case in its own directory; ready
	// reports the kill point from the event stream.
	apply := func(t *testing.T, caseDir string, shimAt int, ready func(event) bool) (*exec.Cmd, chan event, chan struct{}) {
		shims := filepath.Join(caseDir, "shims")
		writeKillShims(t, shims, filepath.Join(caseDir, "calls"), shimAt)
		cmd := exec.Command(os.Args[0], "apply", "--json", "--no-color", "-O", filepath.Join(caseDir, "out"),
			"--work-dir", filepath.Join(caseDir, "work"), "--image-cache", filepath.Join(caseDir, "icache"),
			"--cache-dir", filepath.Join(caseDir, "cache"), filepath.Join(dir, "Dibfile"))
		cmd.Env = append(os.Environ(), "DIB_TEST_RUN_DIB=1", "PATH="+shims+":"+os.Getenv("PATH"))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		events, hit := make(chan event, 1000), make(chan struct{})
		go func() {
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			once := false
			for sc.Scan() {
				var e event
				if json.Unmarshal(sc.Bytes(), &e) != nil {
					continue
				}
				events <- e
				if !once && ready != nil && ready(e) {
					once = true
					close(hit)
				}
			}
			close(events)
		}()
		return cmd, events, hit
	}

	// The reference build: every step, and every tool call, in order.
	ref := filepath.Join(dir, "ref")
	cmd, events, _ := apply(t, ref, 0, nil)
	var steps []event
	for e := range events {
		if e.Type == "step-started" {
			steps = append(steps, e)
		}
	}
	if err := cmd.Wait(); err != nil {
		log, _ := os.ReadFile(filepath.Join(ref, "out", "kd.log"))
		t.Fatalf("the reference build failed: %v\n%s", err, log)
	}
	callsB, _ := os.ReadFile(filepath.Join(ref, "calls"))
	calls := strings.Split(strings.TrimSpace(string(callsB)), "\n")
	t.Logf("reference build: %d steps, %d tool calls", len(steps), len(calls))
	if got := names(filepath.Join(ref, "out")); strings.Join(got, " ") != "kd.d kd.log kd.qcow2 kd.raw kd.tar" {
		t.Fatalf("reference build wrote %v", got)
	}
	if len(calls) < 3 {
		t.Fatalf("the shims saw %d tool calls: %v", len(calls), calls)
	}

	type killCase struct {
		name   string
		shimAt int
		ready  func(event) bool
	}
	cases := []killCase{{name: "build started", ready: func(e event) bool { return e.Type == "build-started" }}}
	for _, s := range steps {
		idx := s.Index
		cases = append(cases, killCase{name: fmt.Sprintf("step %d %s", idx, s.Title), ready: func(e event) bool { return e.Type == "step-started" && e.Index == idx }})
	}
	for i, c := range calls {
		// The tool and its first option name the case (not its paths).
		f := strings.Fields(c)
		if len(f) > 1 && !strings.HasPrefix(f[1], "-") {
			f = f[:1]
		}
		cases = append(cases, killCase{name: fmt.Sprintf("after call %d %s", i+1, strings.Join(f[:min(len(f), 2)], " ")), shimAt: i + 1})
	}
	summary := []string{}
	for i, tc := range cases {
		caseDir := filepath.Join(dir, fmt.Sprintf("c%02d", i))
		out, work, cacheDir := filepath.Join(caseDir, "out"), filepath.Join(caseDir, "work"), filepath.Join(caseDir, "cache")
		t.Run(tc.name, func(t *testing.T) {
			cmd, events, hit := apply(t, caseDir, tc.shimAt, tc.ready)
			readyFile := filepath.Join(caseDir, "calls.ready")
			deadline := time.Now().Add(3 * time.Minute)
			for reached := false; !reached; {
				select {
				case <-hit:
					reached = true
				case <-time.After(10 * time.Millisecond):
					if tc.shimAt > 0 {
						_, err := os.Stat(readyFile)
						reached = err == nil
					}
				}
				if !reached && time.Now().After(deadline) {
					syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
					cmd.Wait()
					t.Fatal("the build never reached the kill point")
				}
			}
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
			for range events {
			}
			// Killed before it started anything, its ledger may be empty.
			if m, _ := filepath.Glob(filepath.Join(runtime.StateDir(out), "ledger", "*.jsonl")); len(m) != 1 {
				t.Fatalf("the killed build left %d ledgers", len(m))
			}
			marker, cgroup := ledgerOf(out)
			before := leftUnder(caseDir, out, work, cacheDir, marker, cgroup)
			t.Logf("left by the kill:%s", before)

			clean := exec.Command(os.Args[0], "clean", "-O", out)
			clean.Env = append(os.Environ(), "DIB_TEST_RUN_DIB=1")
			b, err := clean.CombinedOutput()
			if err != nil {
				t.Fatalf("dib clean: %v\n%s", err, b)
			}
			after := leftUnder(caseDir, out, work, cacheDir, marker, cgroup)
			summary = append(summary, fmt.Sprintf("%-40s before clean:%s", tc.name, before))
			if strings.Join(after.out, " ") != "kd.log" || len(after.work)+len(after.cacheTmp)+len(after.mounts)+len(after.loops)+len(after.procs) > 0 || after.cgroup != "" {
				t.Errorf("left after dib clean:%s\ndib clean said:\n%s", after, b)
			}
			// No lock is held: the output directory and the cache can be
			// taken at once.
			for _, lk := range []string{runtime.LockPath(out), filepath.Join(cacheDir, "lock")} {
				if _, err := os.Stat(lk); err != nil {
					continue
				}
				if b, err := exec.Command("flock", "-n", "-x", lk, "true").CombinedOutput(); err != nil {
					t.Errorf("%s is still locked: %v %s", lk, err, b)
				}
			}
			// The cache holds only whole entries, and nothing but them, its
			// key and its lock: 100 % of the rest was reclaimed.
			filepath.WalkDir(cacheDir, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return nil
				}
				rel, _ := filepath.Rel(cacheDir, p)
				if rel != "hmac.key" && rel != "lock" && !strings.HasPrefix(rel, "entries/") {
					t.Errorf("the cache holds %s", rel)
				}
				return nil
			})
			if _, err := os.Stat(cacheDir); err == nil {
				verify := exec.Command(os.Args[0], "cache", "verify", "--cache-dir", cacheDir)
				verify.Env = append(os.Environ(), "DIB_TEST_RUN_DIB=1")
				if b, err := verify.CombinedOutput(); err != nil {
					t.Errorf("dib cache verify: %v\n%s", err, b)
				}
			}
			again := exec.Command(os.Args[0], "clean", "-O", out)
			again.Env = clean.Env
			if o, err := again.CombinedOutput(); err != nil || !strings.Contains(string(o), "nothing to clean up") {
				t.Errorf("second dib clean: %v\n%s", err, o)
			}
		})
		os.RemoveAll(caseDir)
	}
	t.Logf("kill points (%d):\n  %s", len(summary), strings.Join(summary, "\n  "))
}
