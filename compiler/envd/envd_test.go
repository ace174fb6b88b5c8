package envd

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"
)

func tree(files map[string]string) []TreeEntry {
	var out []TreeEntry
	for p, c := range files {
		out = append(out, TreeEntry{Path: p, Mode: 0o644, Content: []byte(c)})
	}
	return out
}

func byName(vars []Var) map[string]Var {
	m := map[string]Var{}
	for _, v := range vars {
		m[v.Name] = v
	}
	return m
}

func TestEvaluateOriginsAndOrder(t *testing.T) {
	in := Input{
		Env: []Var{{Name: "DIB_RELEASE", Value: "focal"}, {Name: "KEEP", Value: "k"}, {Name: "ARCH", Value: "amd64"}},
		Files: []File{
			{Path: "environment.d/10-a", Element: "a"},
			{Path: "environment.d/20-b", Element: "b"},
		},
		Tree: tree(map[string]string{
			"environment.d/10-a": "cd /\nexport DIB_RELEASE=${DIB_RELEASE:-bookworm}\nexport MIRROR=${MIRROR:-http://m}\nNOT_EXPORTED=1\nexport COMPS=main\n",
			"environment.d/20-b": "export COMPS=$COMPS,contrib\nexport WHERE=$(dirname ${BASH_SOURCE[0]})\nexport HOOKS=$TMP_HOOKS_PATH/x\nexport A2=$ARCH\n",
		}),
	}
	vars, err := Evaluate(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	m := byName(vars)
	want := map[string]Var{
		"DIB_RELEASE": {"DIB_RELEASE", "focal", -1},
		"KEEP":        {"KEEP", "k", -1},
		"ARCH":        {"ARCH", "amd64", -1},
		"MIRROR":      {"MIRROR", "http://m", 0},
		"COMPS":       {"COMPS", "main,contrib", 1},
		"WHERE":       {"WHERE", "$TMP_HOOKS_PATH/environment.d", 1},
		"HOOKS":       {"HOOKS", "$TMP_HOOKS_PATH/x", 1},
		"A2":          {"A2", "amd64", 1},
	}
	for k, w := range want {
		if m[k] != w {
			t.Errorf("%s = %+v, want %+v", k, m[k], w)
		}
	}
	for _, no := range []string{"NOT_EXPORTED", "PATH", "LC_ALL", "PWD", "SHLVL", "TMP_HOOKS_PATH", "TARGET_ROOT"} {
		if _, ok := m[no]; ok {
			t.Errorf("%s in the result", no)
		}
	}
	if len(m) != len(want) {
		t.Errorf("result %+v", vars)
	}
}

func TestEvaluateCleanEnvironment(t *testing.T) {
	t.Setenv("DIB_LEAK", "host")
	vars, err := Evaluate(context.Background(), Input{
		Files: []File{{Path: "environment.d/x"}},
		Tree:  tree(map[string]string{"environment.d/x": "export SEEN=${DIB_LEAK:-none}:${HOME:-nohome}\n"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if v := byName(vars)["SEEN"].Value; v != "none:nohome" {
		t.Errorf("SEEN=%q: the host environment leaked", v)
	}
}

func TestEvaluateFailures(t *testing.T) {
	cases := []struct {
		name, content string
		line          int
		msg           string
	}{
		{"unbound", "export A=1\n\nexport B=$NOPE\n", 3, "NOPE: unbound variable"},
		{"false", "export A=1\nfalse\nexport C=2\n", 2, "a command failed (exit status 1)"},
		{"cd", "cd /\nexport A=1\nexport B=$NOPE2\n", 3, "NOPE2: unbound variable"},
		{"syntax", "export A=1\nif then fi\n", 2, "syntax error"},
		{"exit", "exit 3\n", 0, "exit status 3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Evaluate(context.Background(), Input{
				Files: []File{{Path: "environment.d/00-ok"}, {Path: "environment.d/10-bad"}},
				Tree:  tree(map[string]string{"environment.d/00-ok": "export OK=1\n", "environment.d/10-bad": c.content}),
			})
			var f *Failure
			if !errors.As(err, &f) {
				t.Fatalf("err = %v, want a *Failure", err)
			}
			if f.File != 1 || f.Line != c.line || !strings.Contains(f.Message, c.msg) {
				t.Errorf("failure file %d line %d %q, want file 1 line %d message with %q", f.File, f.Line, f.Message, c.line, c.msg)
			}
		})
	}
}

func TestEvaluateTimeout(t *testing.T) {
	start := time.Now()
	_, err := Evaluate(context.Background(), Input{
		Files:   []File{{Path: "environment.d/slow"}},
		Tree:    tree(map[string]string{"environment.d/slow": "sleep 30\n"}),
		Timeout: 300 * time.Millisecond,
	})
	var f *Failure
	if !errors.As(err, &f) || !strings.Contains(f.Message, "not done after") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s", d)
	}
}

func TestEvaluateNoNetwork(t *testing.T) {
	// In a new network namespace only lo exists, and it is down.
	vars, err := Evaluate(context.Background(), Input{
		Files: []File{{Path: "environment.d/net"}},
		Tree: tree(map[string]string{"environment.d/net": "export IFACES=$(tail -n +3 /proc/self/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ' ')\n" +
			"if (exec 3<>/dev/tcp/127.0.0.1/1) 2>/dev/null; then export NET=yes; else export NET=no; fi\n"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	m := byName(vars)
	if m["IFACES"].Value != "lo " {
		if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("environment.d files see the network (interfaces %q)", m["IFACES"].Value)
		}
		t.Skipf("no network namespace here (interfaces %q)", m["IFACES"].Value)
	}
	if m["NET"].Value != "no" {
		t.Errorf("NET=%s", m["NET"].Value)
	}
}

func TestEvaluateSymlinkAndBadPath(t *testing.T) {
	vars, err := Evaluate(context.Background(), Input{
		Files: []File{{Path: "environment.d/10-link"}},
		Tree: []TreeEntry{
			{Path: "environment.d", Mode: fs.ModeDir | 0o755},
			{Path: "environment.d/real", Mode: 0o644, Content: []byte("export L=1\n")},
			{Path: "environment.d/10-link", Mode: fs.ModeSymlink | 0o777, Link: "real"},
		},
	})
	if err != nil || byName(vars)["L"].Value != "1" {
		t.Fatalf("vars %+v err %v", vars, err)
	}
	if _, err := Evaluate(context.Background(), Input{Files: []File{{Path: "../x"}}}); err == nil {
		t.Error("a path outside the tree was accepted")
	}
}

// TestEvaluateAsNobody: run as root, the files run as nobody and cannot
// write the host's files.
func TestEvaluateAsNobody(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	vars, err := Evaluate(context.Background(), Input{
		Files: []File{{Path: "environment.d/who"}},
		Tree: tree(map[string]string{"environment.d/who": "export WHO=$(id -u)\n" +
			"if touch /etc/dib-envd-write-test 2>/dev/null; then export WROTE=yes; else export WROTE=no; fi\n" +
			"echo x > here && export LOCAL=ok\n"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	m := byName(vars)
	if m["WHO"].Value != "65534" || m["WROTE"].Value != "no" || m["LOCAL"].Value != "ok" {
		os.Remove("/etc/dib-envd-write-test")
		t.Errorf("WHO=%s WROTE=%s LOCAL=%s", m["WHO"].Value, m["WROTE"].Value, m["LOCAL"].Value)
	}
}
