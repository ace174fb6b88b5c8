package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var updateHostile = flag.Bool("update-hostile", false, "rewrite the golden files of testdata/hostile")

// Limits every case of the hostile corpus runs under (issue 12).
const (
	hostileMemory = 256 << 20 // bytes of data segment (prlimit --data) and of peak RSS
	hostileCPU    = 2         // seconds of CPU (prlimit --cpu)
)

// hostileCase is one malformed input: the directory to run in and the
// arguments of dib.
type hostileCase struct {
	name   string
	dir    string
	args   []string
	golden string
	// planSrc is a plan case (plan/NNN-kind-what.json): the plan file is
	// written into a directory of its own, and the IDs in the output are
	// replaced by a placeholder (normalizePlanErrors).
	planSrc string
}

func hostileCases(t *testing.T) []hostileCase {
	t.Helper()
	root := filepath.Join("..", "..", "testdata", "hostile")
	var out []hostileCase
	for _, sub := range []string{"dibfile", "blockdev"} {
		files, err := filepath.Glob(filepath.Join(root, sub, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			base := filepath.Base(f)
			cmd := "plan"
			if sub == "blockdev" {
				cmd = "blockdev"
			}
			out = append(out, hostileCase{name: sub + "/" + strings.TrimSuffix(base, ".yaml"), dir: filepath.Dir(f),
				args: []string{cmd, base}, golden: strings.TrimSuffix(f, ".yaml") + ".golden"})
		}
	}
	dirs, err := filepath.Glob(filepath.Join(root, "elements", "*", "Dibfile.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range dirs {
		d := filepath.Dir(f)
		out = append(out, hostileCase{name: "elements/" + filepath.Base(d), dir: d,
			args: []string{"plan", "-e", "elements", "Dibfile.yaml"}, golden: d + ".golden"})
	}
	plans, err := filepath.Glob(filepath.Join(root, "plan", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range plans {
		out = append(out, hostileCase{name: "plan/" + strings.TrimSuffix(filepath.Base(f), ".json"), args: []string{"plan", "plan.json"},
			golden: strings.TrimSuffix(f, ".json") + ".golden", planSrc: f})
	}
	return out
}

var (
	dibBinaryOnce sync.Once
	dibBinary     string
	dibBinaryErr  error
)

// buildDib builds this command once per test binary.
func buildDib(t *testing.T) string {
	t.Helper()
	dibBinaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dib-hostile-")
		if err != nil {
			dibBinaryErr = err
			return
		}
		afterAll(dir)
		dibBinary = filepath.Join(dir, "dib")
		out, err := exec.Command("go", "build", "-o", dibBinary, ".").CombinedOutput()
		if err != nil {
			dibBinaryErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if dibBinaryErr != nil {
		t.Fatal(dibBinaryErr)
	}
	return dibBinary
}

// errorLine is a rendered error with a position (FILE:LINE:COL) or a
// subject (an element, a node).
var (
	anyError    = regexp.MustCompile(`(?m)^.*\berror: .*$`)
	placedError = regexp.MustCompile(`^(.+:\d+(:\d+)?: error: |error: [^:]+: )`)
	// A plan file's errors name the file (and the step or field).
	placedPlanError = regexp.MustCompile(`^dib: error: plan\.json: `)
)

// TestHostileCorpus runs dib as a subprocess on every malformed input of
// testdata/hostile, under prlimit (256 MB of data, 2 s of CPU): each must
// be refused (exit status 1) with errors carrying a position or an
// element, without a panic, and its stderr must equal the golden file
// byte for byte. In -short mode one case in ten runs.
//
//	go test ./cmd/dib -run TestHostileCorpus -update-hostile
func TestHostileCorpus(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
			t.Fatal("prlimit (util-linux) is needed")
		}
		t.Skip("prlimit (util-linux) is not installed")
	}
	cases := hostileCases(t)
	if len(cases) < 400 {
		t.Fatalf("the hostile corpus has %d cases, want at least 400", len(cases))
	}
	bin := buildDib(t)
	for i, c := range cases {
		if testing.Short() && i%10 != 0 {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			args := append([]string{fmt.Sprintf("--data=%d", hostileMemory), fmt.Sprintf("--cpu=%d", hostileCPU), "--", bin}, c.args...)
			cmd := exec.CommandContext(ctx, prlimit, args...)
			cmd.Dir = c.dir
			if c.planSrc != "" {
				cmd.Dir = t.TempDir()
				writePlanCase(t, bin, c.planSrc, cmd.Dir)
			}
			cmd.Env = append(os.Environ(), "NO_COLOR=1", "ELEMENTS_PATH=")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			m, err := runMeasured(cmd, t.TempDir())
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if m.Signal != 0 {
				t.Fatalf("killed by %v (limits: %d MB, %d s of CPU)\n%s", syscall.Signal(m.Signal), hostileMemory>>20, hostileCPU, lastOf(stderr.String()))
			}
			if m.MaxRSS > hostileMemory {
				t.Errorf("peak RSS %d MB, more than %d MB", m.MaxRSS>>20, hostileMemory>>20)
			}
			if m.Exit != exitFailed {
				t.Errorf("exit status %d, want %d (refused)\n%s", m.Exit, exitFailed, lastOf(stderr.String()))
			}
			errs := stderr.String()
			for _, bad := range []string{"panic", "goroutine ", "fatal error", "internal error"} {
				if strings.Contains(errs, bad) {
					t.Fatalf("%q in the output:\n%s", bad, lastOf(errs))
				}
			}
			lines := anyError.FindAllString(errs, -1)
			if len(lines) == 0 {
				t.Errorf("no error reported:\n%s", lastOf(errs))
			}
			for _, l := range lines {
				if !placedError.MatchString(l) && !(c.planSrc != "" && placedPlanError.MatchString(l)) {
					t.Errorf("error without a position or an element: %s", l)
				}
			}
			if strings.ContainsAny(errs, "\x1b\x07\x00") {
				t.Error("control characters in the diagnostics")
			}
			got := errs
			if c.planSrc != "" {
				got = normalizePlanErrors(errs)
			}
			if *updateHostile {
				if err := os.WriteFile(c.golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(c.golden)
			if err != nil {
				t.Fatalf("%v (run go test ./cmd/dib -run TestHostileCorpus -update-hostile)", err)
			}
			if got != string(want) {
				t.Errorf("stderr differs from %s:\n--- got\n%s--- want\n%s", c.golden, lastOf(got), lastOf(string(want)))
			}
		})
	}
}

// lastOf keeps the end of a long output for a failure message.
func lastOf(s string) string {
	if len(s) > 3000 {
		return "…" + s[len(s)-3000:]
	}
	return s
}
