package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/creack/pty"

	"github.com/dibuild/dib/internal/progress"
	"github.com/dibuild/dib/runtime"
)

// TestApplyDryRun runs `dib apply --dry-run` on the tarball example: no root is
// needed, every command is printed, nothing is built, and the JSON events
// cover every step.
func TestApplyDryRun(t *testing.T) {
	out := t.TempDir()
	code, stdout, stderr := runDib(t, "apply", "--dry-run", "--json", "-O", out, "--work-dir", t.TempDir(), "../../examples/debian-tarball.yaml")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "bootstrap/mmdebstrap | + mmdebstrap --mode=root --format=directory --variant=minbase") {
		t.Errorf("dry run did not print the mmdebstrap command:\n%s", stderr)
	}
	started, finished := 0, 0
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var e struct {
			Type string `json:"type"`
			Step string `json:"step_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("not a JSON event: %q", sc.Text())
		}
		switch e.Type {
		case "step-started":
			started++
		case "step-finished":
			finished++
		}
	}
	if started == 0 || started != finished {
		t.Errorf("%d steps started, %d finished", started, finished)
	}
	var ents []string
	all, _ := os.ReadDir(out)
	for _, e := range all {
		if e.Name() != ".dib" { // the output directory's lock
			ents = append(ents, e.Name())
		}
	}
	if len(ents) != 1 || ents[0] != "debian-rootfs.log" {
		t.Errorf("dry run wrote %v", ents)
	}
	if _, err := os.Stat(filepath.Join(out, "debian-rootfs.tar")); err == nil {
		t.Error("dry run built an output")
	}
}

// TestApplySecretAtApplyTime: a plan file holds no secret value; `dib
// apply` takes it with --secret or --secret-file, refuses a plan without
// it, and refuses a name that is not a secret of the plan.
func TestApplySecretAtApplyTime(t *testing.T) {
	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.json")
	t.Setenv("DEV_PASSWORD", "")
	code, _, stderr := runDib(t, "plan", "-o", planFile, "../../examples/debian-vm.yaml")
	if code != 0 {
		t.Fatalf("plan: exit %d\n%s", code, stderr)
	}
	apply := func(extra ...string) (int, string) {
		args := append([]string{"apply", "--dry-run", "-O", filepath.Join(dir, "out"), "--work-dir", t.TempDir()}, extra...)
		code, _, stderr := runDib(t, append(args, planFile)...)
		return code, stderr
	}
	if code, stderr := apply(); code == 0 || !strings.Contains(stderr, "--secret DIB_DEV_USER_PASSWORD=VALUE") {
		t.Errorf("without the secret: exit %d\n%s", code, stderr)
	}
	if code, stderr := apply("--secret", "DIB_DEV_USER_PASSWORD=s3cret-value"); code != 0 {
		t.Errorf("--secret: exit %d\n%s", code, stderr)
	}
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, stderr := apply("--secret-file", "DIB_DEV_USER_PASSWORD="+pw); code != 0 {
		t.Errorf("--secret-file: exit %d\n%s", code, stderr)
	}
	if code, stderr := apply("--secret", "NOT_A_SECRET=x"); code != 64 || !strings.Contains(stderr, "no secret variable NOT_A_SECRET") {
		t.Errorf("unknown name: exit %d\n%s", code, stderr)
	}
	data, _ := os.ReadFile(planFile)
	if strings.Contains(string(data), "s3cret-value") {
		t.Error("secret in the plan file")
	}
}

// TestApplyImagesDryRun: a multi-image Dibfile is built image by image at
// once (-j 2): every JSON event names its image, each image finishes, the
// summary table lists them all; plain lines start with the image's name.
func TestApplyImagesDryRun(t *testing.T) {
	out := t.TempDir()
	code, stdout, stderr := runDib(t, "apply", "--dry-run", "--json", "-j", "2", "-O", out, "--work-dir", t.TempDir(), "../../examples/multi-image.yaml")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	finished := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e struct{ Type, Image string }
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("not a JSON event: %q", sc.Text())
		}
		if e.Image == "" {
			t.Errorf("event without its image: %s", sc.Text())
		}
		if e.Type == "build-finished" {
			finished[e.Image] = true
		}
	}
	if len(finished) != 2 || !finished["debian-rootfs"] || !finished["debian-ops"] {
		t.Errorf("builds finished: %v", finished)
	}
	for _, row := range []string{"IMAGE ", "\ndebian-rootfs ", "\ndebian-ops "} {
		if !strings.Contains(stderr, row) {
			t.Errorf("the summary has no %q row:\n%s", row, stderr)
		}
	}
	code, _, stderr = runDib(t, "apply", "--dry-run", "--no-color", "-O", t.TempDir(), "--work-dir", t.TempDir(), "../../examples/multi-image.yaml")
	if code != 0 || !strings.Contains(stderr, "[debian-ops] ==> [1/14] bootstrap root filesystem") || !strings.Contains(stderr, "[debian-rootfs] ==> build finished") {
		t.Errorf("plain lines do not name their images: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := runDib(t, "apply", "--dry-run", "--logfile", "x.log", "../../examples/multi-image.yaml"); code != exitUsage {
		t.Errorf("--logfile with several images: exit %d\n%s", code, stderr)
	}
}

// TestApplyCacheRegistryFlags refuses registry references with a tag or
// without a repository, and a registry without a local cache, as usage
// errors naming the flag.
func TestApplyCacheRegistryFlags(t *testing.T) {
	ex := "../../examples/debian-tarball.yaml"
	short := filepath.Join(t.TempDir(), "key")
	os.WriteFile(short, []byte("too short\n"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cache-from", "registry.example.org/dib:latest"}, "--cache-from"},
		{[]string{"--cache-to", "registry.example.org"}, "--cache-to"},
		{[]string{"--cache-dir", "off", "--cache-to", "http://127.0.0.1:5000/dib"}, "need a local build cache"},
		{[]string{"--cache-secret-key", short}, "at least 32"},
	} {
		args := append([]string{"apply", "--dry-run", "-O", t.TempDir()}, tc.args...)
		code, _, stderr := runDib(t, append(args, ex)...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, want %d with %q\n%s", tc.args, code, exitUsage, tc.want, stderr)
		}
	}
}

// TestProgressViewOnATerminal: on a terminal, -v keeps the live view and
// sends the scripts' output under it (its last lines), not as a stream;
// with TERM=dumb, off a terminal or with --dry-run the lines are plain and
// -v streams every line.
func TestProgressViewOnATerminal(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	go io.Copy(io.Discard, ptmx)
	for _, tc := range []struct {
		name     string
		stderr   io.Writer
		term     string
		view     progressView
		live     bool
		streamed bool
	}{
		{"terminal", tty, "xterm", progressView{}, true, false},
		{"terminal -v", tty, "xterm", progressView{verbose: true}, true, false},
		{"dumb -v", tty, "dumb", progressView{verbose: true}, false, true},
		{"dry run", tty, "xterm", progressView{plain: true, verbose: true}, false, true},
		{"pipe -v", &bytes.Buffer{}, "xterm", progressView{verbose: true}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &Globals{Stderr: tc.stderr, Environ: []string{"TERM=" + tc.term}}
			var opts runtime.Options
			g.observe(tc.view, &opts)
			term, live := opts.Observer.(*progress.Terminal)
			if live {
				defer term.Close()
			}
			if live != tc.live || (opts.Console == tc.stderr) != tc.streamed {
				t.Errorf("observer %T, console streamed to stderr: %v", opts.Observer, opts.Console == tc.stderr)
			}
			if tc.view.verbose && opts.Console == nil {
				t.Error("-v: the output goes nowhere")
			}
		})
	}
}
