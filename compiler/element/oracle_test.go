package element

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/dibuild/dib/internal/fixture"
)

// oracleDirs returns the oracle recordings and the DIB skeleton
// (testdata/ of the repository, or $ORACLE_DIR and $DIB_SKELETON).
func oracleDirs(t testing.TB) (oracle, skeleton string) {
	return fixture.OracleDir(t), fixture.SkeletonDir(t)
}

// oracleFields are the fields of an oracle case this test understands.
// A case with any other field fails: the oracle grew something to check.
var oracleFields = map[string]bool{
	"case": true, "description": true, "command": true, "elements_requested": true,
	"env": true, "arch": true, "skip_base": true, "ramdisk_element": true,
	"elements_path": true, "image_element_input": true, "provided": true,
	"provided_by": true, "expanded": true, "element_sources": true,
	"phases": true, "skipped": true, "other_dot_d_dirs": true,
	"environment_d": true, "environment_d_root_phase": true,
	"block_device_config_source": true, "error": true, "error_detail": true,
	// Known but random in DIB (bash hash and Python set order): not
	// compared here; TestOracleHashOrders checks dib's emulation of them.
	"image_element_order": true, "hook_copy_order": true,
}

type oracleCase struct {
	Case              string              `json:"case"`
	ElementsRequested []string            `json:"elements_requested"`
	Arch              string              `json:"arch"`
	SkipBase          bool                `json:"skip_base"`
	RamdiskElement    *string             `json:"ramdisk_element"`
	ElementsPath      []string            `json:"elements_path"`
	Input             []string            `json:"image_element_input"`
	Provided          []string            `json:"provided"`
	ProvidedBy        map[string][]string `json:"provided_by"`
	Expanded          []string            `json:"expanded"`
	ElementSources    map[string]string   `json:"element_sources"`
	Phases            map[string][]struct {
		Script  string `json:"script"`
		Element string `json:"element"`
	} `json:"phases"`
	Skipped map[string][]struct {
		Name    string          `json:"name"`
		Element json.RawMessage `json:"element"` // a name, or a list for merged directories
		Reason  string          `json:"reason"`
	} `json:"skipped"`
	OtherDirs map[string]struct {
		Run     bool     `json:"run_by_dib_run_parts"`
		Entries []string `json:"entries"`
	} `json:"other_dot_d_dirs"`
	EnvironmentD     []EnvFile `json:"environment_d"`
	EnvironmentDRoot []EnvFile `json:"environment_d_root_phase"`
	BlockDevice      *string   `json:"block_device_config_source"`
	ElementOrder     []string  `json:"image_element_order"`
	HookCopyOrder    []string  `json:"hook_copy_order"`
	Error            *string   `json:"error"`
	ErrorDetail      *struct {
		Stage            string   `json:"stage"`
		Exception        string   `json:"exception"`
		ExceptionMessage *string  `json:"exception_message"`
		Logged           []string `json:"logged"`
	} `json:"error_detail"`
}

// TestOracleElements checks Resolve against every case upstream DIB
// recorded in $ORACLE_DIR/elements.
func TestOracleElements(t *testing.T) {
	oracle, skeleton := oracleDirs(t)
	dir := filepath.Join(oracle, "elements")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) == 0 {
		t.Fatalf("no oracle case in %s (set ORACLE_DIR)", dir)
	}
	fixtures := filepath.Join(dir, "fixtures", "elements")
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(data, &raw); err != nil {
				t.Fatal(err)
			}
			for k := range raw {
				if !oracleFields[k] {
					t.Errorf("case has field %q this test does not know", k)
				}
			}
			var c oracleCase
			if err := json.Unmarshal(data, &c); err != nil {
				t.Fatal(err)
			}
			opts := oracleOptions(t, &c, skeleton, fixtures)
			res, diags := Resolve(opts)
			if res == nil {
				t.Fatal("Resolve returned a nil Result")
			}
			eq(t, "image_element_input", res.Input, c.Input)
			eq(t, "provided", res.Provided, nonNil(c.Provided))
			eq(t, "provided_by", res.ProvidedBy, c.ProvidedBy)
			eq(t, "expanded", res.Expanded, nonNil(c.Expanded))
			if c.Error != nil {
				checkError(t, &c, res)
				if !diags.HasErrors() {
					t.Errorf("no error diagnostic for a failing case")
				}
				return
			}
			if res.Failure != nil || diags.HasErrors() {
				t.Fatalf("unexpected failure %+v:\n%v", res.Failure, diags)
			}
			sources := map[string]string{}
			for _, e := range res.Elements {
				sources[e.Name] = e.Source + ":" + e.Dir
			}
			if c.ElementSources != nil {
				eq(t, "element_sources", sources, c.ElementSources)
			}
			checkPhases(t, &c, res)
			eq(t, "environment_d", res.EnvironmentD, nonNil(c.EnvironmentD))
			eq(t, "environment_d_root_phase", res.EnvironmentDRoot, nonNil(c.EnvironmentDRoot))
			if c.BlockDevice == nil {
				t.Errorf("case has no block_device_config_source")
			} else {
				eq(t, "block_device_config_source", res.BlockDevice.Label, *c.BlockDevice)
			}
			other := map[string][]string{}
			for _, d := range res.OtherDirs {
				other[d.Name] = d.Entries
			}
			want := map[string][]string{}
			for k, v := range c.OtherDirs {
				if v.Run {
					t.Errorf("other_dot_d_dirs[%s] says run_by_dib_run_parts", k)
				}
				want[k] = nonNil(v.Entries)
			}
			eq(t, "other_dot_d_dirs", other, want)
		})
	}
}

// oracleOptions turns a case into Resolve options.
func oracleOptions(t testing.TB, c *oracleCase, skeleton, fixtures string) Options {
	opts := Options{Elements: c.ElementsRequested, Arch: c.Arch, SkipBase: c.SkipBase}
	if c.RamdiskElement != nil {
		opts.Ramdisk, opts.RamdiskElement = true, *c.RamdiskElement
	}
	for _, p := range c.ElementsPath {
		switch p {
		case "bundled":
			opts.Path = append(opts.Path, Source{Name: "bundled", FS: os.DirFS(skeleton)})
		case "fixtures/elements":
			opts.Path = append(opts.Path, Source{Name: "fixtures", FS: fixtureFS(t, fixtures)})
		default:
			opts.Path = append(opts.Path, Source{Name: p, FS: os.DirFS(p)})
		}
	}
	return opts
}

// TestOracleHashOrders checks that dib reproduces the element orders the
// oracle recorded with PYTHONHASHSEED=0: image_element_order (Python set
// order of the expansion) and hook_copy_order (bash associative-array
// order; cut short where generate_hooks failed).
func TestOracleHashOrders(t *testing.T) {
	oracle, skeleton := oracleDirs(t)
	dir := filepath.Join(oracle, "elements")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) == 0 {
		t.Fatalf("no oracle case in %s (set ORACLE_DIR)", dir)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var c oracleCase
		if err := json.Unmarshal(data, &c); err != nil {
			t.Fatal(err)
		}
		if len(c.ElementOrder) == 0 {
			continue
		}
		t.Run(c.Case, func(t *testing.T) {
			res, _ := Resolve(oracleOptions(t, &c, skeleton, filepath.Join(dir, "fixtures", "elements")))
			eq(t, "image_element_order", res.ElementOrder, c.ElementOrder)
			got := res.CopyOrder
			if c.Error != nil && len(got) > len(c.HookCopyOrder) {
				got = got[:len(c.HookCopyOrder)]
			}
			eq(t, "hook_copy_order", got, nonNil(c.HookCopyOrder))
		})
	}
}

func checkError(t *testing.T, c *oracleCase, res *Result) {
	t.Helper()
	f := res.Failure
	if f == nil {
		t.Fatalf("no failure, want %s", *c.Error)
	}
	d := c.ErrorDetail
	if d != nil && d.Exception != "" {
		eq(t, "error kind", f.Kind, d.Exception)
		if d.ExceptionMessage != nil {
			eq(t, "error message", f.Message, *d.ExceptionMessage)
		}
		var logged []string
		for _, l := range d.Logged {
			_, msg, ok := strings.Cut(l, " [-] ")
			if !ok {
				msg = l
			}
			logged = append(logged, msg)
		}
		eq(t, "error logged", f.Logged, logged)
		return
	}
	// generate_hooks errors: the message is all DIB prints.
	eq(t, "error kind", f.Kind, KindDuplicateHook)
	eq(t, "error message", f.Message, *c.Error)
}

func checkPhases(t *testing.T, c *oracleCase, res *Result) {
	t.Helper()
	if len(c.Phases) != len(phaseOrder) {
		t.Errorf("case has %d phases, want %d", len(c.Phases), len(phaseOrder))
	}
	if len(res.Phases) != len(phaseOrder) {
		t.Fatalf("Result has %d phases", len(res.Phases))
	}
	gotSkipped := map[string][]string{}
	for i, p := range res.Phases {
		if p.Name != phaseOrder[i].name {
			t.Errorf("phase %d is %s, want %s", i, p.Name, phaseOrder[i].name)
		}
		var got, want []string
		for _, s := range p.Scripts {
			got = append(got, s.Name+" "+s.Element)
		}
		for _, s := range c.Phases[p.Name] {
			want = append(want, s.Script+" "+s.Element)
		}
		eq(t, "phases["+p.Name+"]", got, want)
		for _, s := range p.Skipped {
			// A directory merged from several elements lists them in DIB's
			// random copy order: compare that list as a set.
			els := append([]string(nil), s.Elements...)
			sort.Strings(els)
			gotSkipped[p.Name] = append(gotSkipped[p.Name], fmt.Sprintf("%s %v %s", s.Name, els, s.Reason))
		}
	}
	wantSkipped := map[string][]string{}
	for ph, list := range c.Skipped {
		for _, s := range list {
			var els []string
			if err := json.Unmarshal(s.Element, &els); err != nil {
				var one string
				if err := json.Unmarshal(s.Element, &one); err != nil {
					t.Fatalf("skipped element %s: %v", s.Element, err)
				}
				els = []string{one}
			}
			sort.Strings(els)
			wantSkipped[ph] = append(wantSkipped[ph], fmt.Sprintf("%s %v %s", s.Name, els, s.Reason))
		}
	}
	eq(t, "skipped", gotSkipped, wantSkipped)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func eq(t *testing.T, what string, got, want any) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	g, _ := json.MarshalIndent(got, "", " ")
	w, _ := json.MarshalIndent(want, "", " ")
	if bytes.Equal(g, w) {
		return // nil vs empty
	}
	t.Errorf("%s differs:\n got: %s\nwant: %s", what, g, w)
}
