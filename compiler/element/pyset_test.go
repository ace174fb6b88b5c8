package element

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestPyHash(t *testing.T) {
	// Values printed by python3.11 with PYTHONHASHSEED=0.
	for s, want := range map[string]int64{"base": -2151260247524516074, "a": 4644417185603328019, "": 0, "vm": -3515884870524466699} {
		if got := pyHash(s); got != want {
			t.Errorf("pyHash(%q) = %d, want %d", s, got, want)
		}
	}
}

type pyCase struct {
	A, B []string
}

// TestPySetAgainstPython compares the emulated set orders with the real
// CPython: set(list), a - b (both algorithms), a.update(b), a & b, a | b.
func TestPySetAgainstPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
			t.Fatal("python3 not found")
		}
		t.Skip("python3 not found")
	}
	out, err := exec.Command(py, "-c", "import sys; print(sys.version_info[:2] == (3, 11))").Output()
	if err != nil || strings.TrimSpace(string(out)) != "True" {
		t.Skipf("python3 is not 3.11 (%s): set internals differ between versions", strings.TrimSpace(string(out)))
	}
	r := rand.New(rand.NewSource(7))
	word := func() string {
		const chars = "abcdefghijklmnopqrstuvwxyz-0123456789"
		n := 1 + r.Intn(20)
		b := make([]byte, n)
		for i := range b {
			b[i] = chars[r.Intn(len(chars))]
		}
		return string(b)
	}
	var cases []pyCase
	for range 400 {
		pool := make([]string, 1+r.Intn(150))
		for i := range pool {
			pool[i] = word()
		}
		pick := func() []string {
			n := r.Intn(len(pool) + 1)
			if r.Intn(3) == 0 {
				n = r.Intn(6)
			}
			out := make([]string, n)
			for i := range out {
				out[i] = pool[r.Intn(len(pool))]
			}
			return out
		}
		cases = append(cases, pyCase{pick(), pick()})
	}
	in, _ := json.Marshal(cases)
	script := `
import json, sys
out = []
for c in json.load(sys.stdin):
    a, b = set(c["A"]), set(c["B"])
    u = set(c["A"]); u.update(b)
    out.append([list(a), list(a - b), list(u), list(a & b), list(a | b)])
json.dump(out, sys.stdout)
`
	cmd := exec.Command(py, "-c", script)
	cmd.Env = append(os.Environ(), "PYTHONHASHSEED=0")
	cmd.Stdin = strings.NewReader(string(in))
	res, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var want [][][]string
	if err := json.Unmarshal(res, &want); err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		a, b := pySetOf(c.A), pySetOf(c.B)
		u := pySetOf(c.A)
		u.update(b)
		or := a.copySet()
		or.update(b)
		got := [][]string{a.keys(), a.difference(b.len(), b.contains).keys(), u.keys(), a.intersection(b).keys(), or.keys()}
		for j, name := range []string{"set", "a - b", "update", "a & b", "a | b"} {
			if !slices.Equal(got[j], nonNil(want[i][j])) {
				t.Errorf("case %d %s (|a|=%d |b|=%d):\n got %q\nwant %q", i, name, a.len(), b.len(), got[j], want[i][j])
			}
		}
	}
	_ = fmt.Sprint()
}
