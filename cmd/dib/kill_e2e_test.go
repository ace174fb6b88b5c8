package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dibuild/dib/runtime"
	"github.com/dibuild/dib/runtime/shell"
)

// killDibfile is the cheapest real build: a minbase tree and a tar.
const killDibfile = `name: kt
distro:
  name: debian-minimal
  release: bookworm
arch: amd64
outputs: [tar]
`

// TestKilledBuildsCleaned kills `dib apply` with SIGKILL (no cleanup can
// run) during the bootstrap, during a chroot phase and while it writes
// the output; `dib clean` then reclaims everything: the output directory
// holds only the log, the work directory is empty, nothing is mounted
// or attached, no process of the build runs, no mmdebstrap gpg home is
// left in /tmp.
func TestKilledBuildsCleaned(t *testing.T) {
	requireE2E(t)
	dir := t.TempDir()
	dibfile := filepath.Join(dir, "Dibfile")
	if err := os.WriteFile(dibfile, []byte(killDibfile), 0o644); err != nil {
		t.Fatal(err)
	}
	cacheDir := filepath.Join(dir, "cache")
	gpgBefore, _ := filepath.Glob("/tmp/mmdebstrap.gpghome.*")
	dib := func(args ...string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), "DIB_TEST_RUN_DIB=1", "DIB_CACHE_DIR="+cacheDir)
		return cmd
	}
	logHas := func(out, s string) func() bool {
		return func() bool {
			b, _ := os.ReadFile(filepath.Join(out, "kt.log"))
			return strings.Contains(string(b), s)
		}
	}
	for _, tc := range []struct {
		name  string
		ready func(out string) func() bool
	}{
		{"bootstrap", func(out string) func() bool { return logHas(out, "bootstrap/mmdebstrap | ") }},
		{"chroot phase", func(out string) func() bool { return logHas(out, "phase install.d (") }},
		{"output", func(out string) func() bool {
			return func() bool {
				m, _ := filepath.Glob(filepath.Join(out, ".kt.tar.dibtmp-*"))
				if len(m) == 0 {
					return false
				}
				fi, err := os.Stat(m[0])
				return err == nil && fi.Size() > 4<<20
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, work := filepath.Join(dir, tc.name, "out"), filepath.Join(dir, tc.name, "work")
			cmd := dib("apply", "--no-color", "-O", out, "--work-dir", work, "--image-cache", "/var/cache/dib-test", dibfile)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			ready := tc.ready(out)
			deadline := time.Now().Add(5 * time.Minute)
			for !ready() {
				if time.Now().After(deadline) {
					syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
					cmd.Wait()
					t.Fatal("the build never reached the kill point")
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(300 * time.Millisecond)
			// dib and its process group; the commands it started run on,
			// each in its own group, as after a real kill of dib.
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
			marker := ledgerMarker(t, out)

			var stderr strings.Builder
			clean := dib("clean", "-O", out)
			clean.Stderr = &stderr
			if err := clean.Run(); err != nil {
				t.Fatalf("dib clean: %v\n%s", err, stderr.String())
			}
			if !strings.Contains(stderr.String(), "reclaimed:") {
				t.Errorf("dib clean did not say what it reclaimed:\n%s", stderr.String())
			}
			t.Logf("dib clean:\n%s", stderr.String())
			if ents, _ := os.ReadDir(out); len(ents) != 1 || ents[0].Name() != "kt.log" {
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Errorf("output dir holds %v", names)
			}
			if ents, _ := os.ReadDir(work); len(ents) != 0 {
				t.Errorf("work dir holds %s…", ents[0].Name())
			}
			if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), work) {
				t.Errorf("a mount under the work dir is left")
			}
			if l, _ := exec.Command("losetup", "-a").Output(); strings.Contains(string(l), work) {
				t.Errorf("a loop device is left: %s", l)
			}
			if pids := shell.Marked(marker); len(pids) > 0 {
				t.Errorf("processes of the build still run: %v", pids)
			}
			// A second clean finds nothing.
			if b, err := dib("clean", "-O", out).CombinedOutput(); err != nil || !strings.Contains(string(b), "nothing to clean up") {
				t.Errorf("second dib clean: %v\n%s", err, b)
			}
		})
	}
	gpgAfter, _ := filepath.Glob("/tmp/mmdebstrap.gpghome.*")
	if len(gpgAfter) > len(gpgBefore) {
		t.Errorf("mmdebstrap gpg homes left in /tmp: %v", gpgAfter)
	}
}

// ledgerMarker returns the process marker a killed build's ledger holds.
func ledgerMarker(t *testing.T, out string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(runtime.StateDir(out), "ledger", "*.jsonl"))
	if len(m) != 1 {
		t.Fatalf("killed build left %d ledgers", len(m))
	}
	f, err := os.Open(m[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e struct{ Marker string }
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Marker != "" {
			return e.Marker
		}
	}
	t.Fatal("no process marker in the ledger")
	return ""
}
