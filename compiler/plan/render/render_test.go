package render

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/internal/fixture"
	"github.com/dibuild/dib/internal/golden"
)

// readPlan reads one of the compiler's golden plan files: the text
// renderer works from the plan model alone, as `dib apply plan.json`
// shows a plan it did not compile.
func readPlan(t *testing.T, name string) *plan.Plan {
	t.Helper()
	f, err := os.Open(filepath.Join(fixture.RepoRoot(t), "compiler", "testdata", "plans", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := plan.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTextFromPlanFile: the text of a plan read back from its JSON is the
// text the compiler's golden test renders from the compiled plan.
func TestTextFromPlanFile(t *testing.T) {
	for _, name := range []string{"debian-vm", "debian-tarball", "centos-efi-lvm"} {
		t.Run(name, func(t *testing.T) {
			var got bytes.Buffer
			if err := Text(&got, readPlan(t, name), Options{}); err != nil {
				t.Fatal(err)
			}
			got.WriteString("\n")
			want, err := os.ReadFile(filepath.Join(fixture.RepoRoot(t), "compiler", "testdata", "plans", name+".txt"))
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != string(want) {
				t.Errorf("text of %s.json differs from %s.txt", name, name)
			}
		})
	}
}

// TestLayout renders the layouts the disk assembly tests build (GPT with
// an ESP, MBR with logical partitions, LVM).
func TestLayout(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(fixture.RepoRoot(t), "runtime", "disk", "testdata", "layout-*.json"))
	if len(files) == 0 {
		t.Fatal("no layouts")
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var l layout.Layout
			if err := json.Unmarshal(b, &l); err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := Layout(&got, &l); err != nil {
				t.Fatal(err)
			}
			golden.Compare(t, filepath.Join("testdata", name+".txt"), got.Bytes())
		})
	}
}

// TestDOT: one node per step in plan order, one edge per dependency.
// (Not a golden file: the example plans change with every element.)
func TestDOT(t *testing.T) {
	p := readPlan(t, "debian-tarball")
	var got bytes.Buffer
	if err := DOT(&got, p); err != nil {
		t.Fatal(err)
	}
	out := got.String()
	if !strings.HasPrefix(out, "digraph") {
		t.Errorf("not a digraph:\n%s", out)
	}
	edges, last := 0, -1
	for _, s := range p.Steps {
		edges += len(s.Deps)
		i := strings.Index(out, plan.ShortID(s.ID))
		if i < 0 || i < last {
			t.Errorf("step %s is missing or out of order", s.Title)
		}
		last = i
	}
	if n := strings.Count(out, " -> "); n != edges {
		t.Errorf("%d edges, the plan has %d dependencies", n, edges)
	}
}

// TestDiffText renders the difference of two example plans, and of a plan
// with itself.
func TestDiffText(t *testing.T) {
	a, b := readPlan(t, "debian-tarball"), readPlan(t, "debian-vm")
	var got bytes.Buffer
	if err := DiffText(&got, plan.Compare(a, b), Options{}); err != nil {
		t.Fatal(err)
	}
	// Not a golden file: the example plans change with every element.
	for _, want := range []string{"write hook tree", "partition disk", "output qcow2"} {
		if !strings.Contains(got.String(), want) {
			t.Errorf("the diff does not show %q:\n%s", want, got.String())
		}
	}
	got.Reset()
	if err := DiffText(&got, plan.Compare(a, a), Options{}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got.String(), "No differences") {
		t.Errorf("a plan differs from itself:\n%s", got.String())
	}
}

// TestColorOnlyWhenAsked: no escape sequence without Options.Color.
func TestColorOnlyWhenAsked(t *testing.T) {
	p := readPlan(t, "debian-vm")
	var plain, color bytes.Buffer
	if err := Text(&plain, p, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := Text(&color, p, Options{Color: true}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plain.String(), "\x1b[") || !strings.Contains(color.String(), "\x1b[") {
		t.Error("colour escapes without Color, or none with it")
	}
}
