package lib

import (
	"bytes"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSortNMatchesCoreutils(t *testing.T) {
	names := []string{"90-last", "10-b", "10-a", "5-x", "05-y", "foo", "100-z", "00-zero", "-3-neg", "_under", "A-cap", "a-low", "9", "010-ten", "10"}
	want := append([]string(nil), names...)
	// Reference: coreutils itself.
	cmd := exec.Command("sort", "-n")
	cmd.Env = []string{"LC_ALL=C"}
	cmd.Stdin = strings.NewReader(strings.Join(names, "\n") + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("sort not runnable: %v", err)
	}
	want = strings.Fields(string(out))
	for i := 0; i < 20; i++ {
		got := append([]string(nil), names...)
		rand.New(rand.NewSource(int64(i))).Shuffle(len(got), func(a, b int) { got[a], got[b] = got[b], got[a] })
		SortN(got)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("SortN = %q\nsort -n = %q", got, want)
		}
	}
}

func TestRunnable(t *testing.T) {
	tests := []struct {
		name string
		mode fs.FileMode
		ok   bool
	}{
		{"10-foo", 0o755, true},
		{"10-foo.sh", 0o755, false},
		{"README", 0o644, false},
		{"10-foo~", 0o755, false},
		{".hidden", 0o755, false},
		{"20-dir", fs.ModeDir | 0o755, false},
		{"50_under-Score", 0o700, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, why := Runnable(tt.name, tt.mode)
			if ok != tt.ok || (!ok && why == "") {
				t.Errorf("Runnable = %v %q", ok, why)
			}
		})
	}
}

// TestDibRunParts runs the embedded dib-run-parts on a phase directory and
// checks which scripts run, in which order, with environment.d sourced.
func TestDibRunParts(t *testing.T) {
	dir := t.TempDir()
	p, err := Write(dir, Options{SudoShim: true})
	if err != nil {
		t.Fatal(err)
	}
	hooks := filepath.Join(dir, "hooks")
	phase := filepath.Join(hooks, "install.d")
	envd := filepath.Join(hooks, "environment.d")
	for _, d := range []string{phase, envd} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, content string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(envd, "10-a.bash"), "export ORDER=a\n", 0o644)
	write(filepath.Join(envd, "20-b"), "export ORDER=\"$ORDER b\"\n", 0o644)
	for _, n := range []string{"50-x", "10-y", "100-z", "05-w"} {
		write(filepath.Join(phase, n), "#!/bin/sh\necho run "+n+" $ORDER\n", 0o755)
	}
	write(filepath.Join(phase, "20-noexec"), "#!/bin/sh\necho bad\n", 0o644)
	write(filepath.Join(phase, "30-dot.sh"), "#!/bin/sh\necho bad\n", 0o755)

	cmd := exec.Command(filepath.Join(p.Bin, "dib-run-parts"), phase)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var runs []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "run ") {
			runs = append(runs, l)
		}
	}
	want := []string{"run 05-w a b", "run 10-y a b", "run 50-x a b", "run 100-z a b"}
	if !reflect.DeepEqual(runs, want) {
		t.Errorf("runs %q, want %q\n%s", runs, want, out)
	}
	list, err := exec.Command(filepath.Join(p.Bin, "dib-run-parts"), "--list", phase).Output()
	if err != nil || string(list) != "05-w\n10-y\n50-x\n100-z\n" {
		t.Errorf("--list %q %v", list, err)
	}

	// A failing script stops the run.
	write(filepath.Join(phase, "60-fail"), "#!/bin/sh\nexit 7\n", 0o755)
	cmd = exec.Command(filepath.Join(p.Bin, "dib-run-parts"), phase)
	out, err = cmd.CombinedOutput()
	if err == nil || bytes.Contains(out, []byte("run 100-z")) {
		t.Errorf("did not stop at the failure: %v\n%s", err, out)
	}
}

func TestLibFunctions(t *testing.T) {
	dir := t.TempDir()
	p, err := Write(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	script := `source $_LIB/img-functions
check_element base && echo has-base
check_element nope || echo no-nope
( die "broken thing" ); echo "die=$?"
`
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = []string{"_LIB=" + p.Lib, "IMAGE_ELEMENT=base debian-minimal", "PATH=/usr/bin:/bin"}
	out, _ := cmd.CombinedOutput()
	for _, w := range []string{"has-base", "no-nope", "ERROR: broken thing", "die=1"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("missing %q in %s", w, out)
		}
	}
	if _, err := os.Stat(filepath.Join(p.Bin, "sudo")); err == nil {
		t.Error("sudo shim written without SudoShim")
	}
}

func TestSudoShim(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the shim only runs commands as root")
	}
	dir := t.TempDir()
	p, err := Write(dir, Options{SudoShim: true})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
		fail bool
	}{
		{[]string{"echo", "hi"}, "hi\n", false},
		{[]string{"-E", "-H", "echo", "x"}, "x\n", false},
		{[]string{"-u", "root", "sh", "-c", "echo $FOO"}, "\n", false},
		{[]string{"FOO=bar", "sh", "-c", "echo $FOO"}, "bar\n", false},
		{[]string{"-u", "nobody", "true"}, "", true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, err := exec.Command(filepath.Join(p.Bin, "sudo"), tt.args...).Output()
			if (err != nil) != tt.fail || (!tt.fail && string(out) != tt.want) {
				t.Errorf("out %q err %v", out, err)
			}
		})
	}
}
