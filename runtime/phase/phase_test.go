package phase

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dibuild/dib/runtime/shell"
)

type recorder struct{ events []string }

func (r *recorder) ScriptStarted(phase string, s Script) {
	r.events = append(r.events, "start "+phase+" "+s.Element+"/"+s.Name)
}

func (r *recorder) ScriptFinished(phase string, s Script, d time.Duration, err error) {
	st := "ok"
	if err != nil {
		st = "failed"
	}
	r.events = append(r.events, "end "+phase+" "+s.Element+"/"+s.Name+" "+st)
}

func writeHooks(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestHostPhase(t *testing.T) {
	hooks := writeHooks(t, map[string]string{
		"environment.d/10-a.bash": "export A=1\nNOT_EXPORTED=x\n",
		"environment.d/20-b.bash": "export B=\"$A-2\"\n",
		"root.d/10-first":         "#!/bin/bash\necho \"first A=$A B=$B NE=${NOT_EXPORTED:-} D=$DIB_X\"\n",
		"root.d/20-second":        "#!/bin/sh\necho second >&2\n",
		"root.d/50-fail":          "#!/bin/sh\necho about to fail\nexit 4\n",
		"root.d/60-never":         "#!/bin/sh\necho never\n",
	})
	var out, log bytes.Buffer
	rec := &recorder{}
	r := &Runner{
		Shell:     &shell.Runner{Out: &out},
		HooksPath: hooks,
		HostEnv:   []string{"PATH=/usr/bin:/bin", "DIB_X=dx"},
		Log:       &log, LogPath: "/var/log/dib/build.log",
		Observer: rec,
	}
	p := Phase{Name: "root.d", Where: Host,
		EnvironmentD: []EnvFile{{Element: "e1", Name: "10-a.bash", Path: "environment.d/10-a.bash"}, {Element: "e2", Name: "20-b.bash", Path: "environment.d/20-b.bash"}},
		Scripts: []Script{
			{Element: "e1", Name: "10-first", Path: "root.d/10-first"},
			{Element: "e2", Name: "20-second", Path: "root.d/20-second"},
		}}
	times, err := r.Run(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	want := "e1/10-first | first A=1 B=1-2 NE= D=dx\ne2/20-second | second\n"
	if out.String() != want || log.String() != want {
		t.Errorf("out %q\nlog %q\nwant %q", out.String(), log.String(), want)
	}
	if len(times) != 2 || times[0].Script != "10-first" || times[0].Duration <= 0 {
		t.Errorf("times %+v", times)
	}

	// A failing script stops the phase with a diagnostic naming it.
	p.Scripts = append(p.Scripts, Script{Element: "e3", Name: "50-fail", Path: "root.d/50-fail"}, Script{Element: "e3", Name: "60-never", Path: "root.d/60-never"})
	out.Reset()
	rec.events = nil
	_, err = r.Run(context.Background(), p)
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("want *Error, got %v", err)
	}
	if pe.Phase != "root.d" || pe.Element != "e3" || pe.Script != "50-fail" {
		t.Errorf("error %+v", pe)
	}
	msg := err.Error()
	for _, w := range []string{"root.d", "50-fail", "e3", "/var/log/dib/build.log", "exit status 4"} {
		if !strings.Contains(msg, w) {
			t.Errorf("message lacks %q: %s", w, msg)
		}
	}
	d := pe.Diagnostic()
	if d.Subject != "e3/50-fail" || !strings.Contains(d.Message, "about to fail") || !strings.Contains(d.Hint, "build.log") {
		t.Errorf("diagnostic %+v", d)
	}
	if strings.Contains(out.String(), "never") {
		t.Error("ran past the failure")
	}
	wantEv := []string{"start root.d e1/10-first", "end root.d e1/10-first ok", "start root.d e2/20-second", "end root.d e2/20-second ok",
		"start root.d e3/50-fail", "end root.d e3/50-fail failed"}
	if !reflect.DeepEqual(rec.events, wantEv) {
		t.Errorf("events %q", rec.events)
	}
}

func TestEnvFileFailureStopsScript(t *testing.T) {
	hooks := writeHooks(t, map[string]string{
		"environment.d/10-bad": "false\nreturn 3\n",
		"install.d/10-x":       "#!/bin/sh\necho ran\n",
	})
	var out bytes.Buffer
	r := &Runner{Shell: &shell.Runner{Out: &out}, HooksPath: hooks, HostEnv: []string{"PATH=/usr/bin:/bin"}}
	_, err := r.Run(context.Background(), Phase{Name: "post-root.d", Where: Host,
		EnvironmentD: []EnvFile{{Path: "environment.d/10-bad"}},
		Scripts:      []Script{{Element: "x", Name: "10-x", Path: "install.d/10-x"}}})
	if err == nil || strings.Contains(out.String(), "ran") {
		t.Errorf("err %v out %q", err, out.String())
	}
}

func TestChrootArgv(t *testing.T) {
	r := &Runner{HooksPath: "/tmp/dib_build.1/hooks", TargetRoot: "/tmp/dib_build.1/built"}
	p := Phase{Name: "install.d", Where: Chroot, EnvironmentD: []EnvFile{{Path: "environment.d/10-it's"}}}
	got := r.Argv(p, Script{Path: "install.d/50-x"})
	want := []string{"chroot", "/tmp/dib_build.1/built", "bash", "-c",
		`source '/tmp/in_target.d/environment.d/10-it'\''s' || exit $?; exec '/tmp/in_target.d/install.d/50-x'`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Argv =\n%q\nwant\n%q", got, want)
	}
	p.Where = Host
	got = r.Argv(p, Script{Path: "root.d/50-x"})
	if got[0] != "bash" || !strings.Contains(got[2], "exec '/tmp/dib_build.1/hooks/root.d/50-x'") {
		t.Errorf("host argv %q", got)
	}
}

func TestUnknownWhere(t *testing.T) {
	r := &Runner{Shell: &shell.Runner{}}
	if _, err := r.Run(context.Background(), Phase{Name: "x", Where: "moon"}); err == nil {
		t.Error("accepted")
	}
}
