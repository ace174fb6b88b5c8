package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/internal/fixture"
)

// imageCase is one recording of ../shared/oracle/images: an image built by
// upstream DIB, with the same build written as a Dibfile.
type imageCase struct {
	Case              string          `json:"case"`
	Dibfile           json.RawMessage `json:"dibfile"`
	InstalledPackages []struct {
		Name string `json:"name"`
	} `json:"installed_packages"`
	Qcow2Bytes int64 `json:"qcow2_bytes"`
}

func readImageCases(t *testing.T) map[string]imageCase {
	t.Helper()
	dir := filepath.Join(fixture.OracleDir(t), "images")
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no image cases in %s (%v)", dir, err)
	}
	cases := map[string]imageCase{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c imageCase
		if err := json.Unmarshal(data, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		cases[strings.TrimSuffix(filepath.Base(f), ".json")] = c
	}
	return cases
}

// softwareKey is what decides the set of installed packages of a plan: the
// distribution, release and architecture, the expanded elements, the
// bootstrap, every phase's package-installs and the Dibfile's packages.
// Two plans with the same key install the same packages (the name,
// outputs, sizes and secrets do not matter), so one build answers for both.
func softwareKey(p *plan.Plan) string {
	var b strings.Builder
	b.WriteString(strings.Join([]string{p.Image.Distro, p.Image.Family, p.Image.Release, p.Image.Arch}, " ") + "\n")
	var els []string
	for _, e := range p.Elements {
		els = append(els, e.Name)
	}
	slices.Sort(els)
	b.WriteString(strings.Join(els, " ") + "\n")
	for _, s := range p.Steps {
		switch {
		case s.Bootstrap != nil:
			bs := s.Bootstrap
			b.WriteString(strings.Join([]string{"bootstrap", bs.Provider, bs.Suite, bs.Variant, strings.Join(bs.Components, ","), strings.Join(bs.Include, ","), strings.Join(bs.Sources, ";")}, " ") + "\n")
		case s.Phase != nil:
			for _, pk := range s.Phase.Packages {
				b.WriteString(s.Phase.Name + " " + pk.Name + "=" + strings.Join(pk.Mapped, ",") + "\n")
			}
		case s.Packages != nil:
			b.WriteString("packages " + strings.Join(s.Packages.Names, " ") + "\n")
		}
	}
	return b.String()
}

// diskKey is what decides a plan's disk image beyond its packages: the
// layout (with its filesystems), the bootloader and the qcow2 output's
// options.
// Two plans with the same softwareKey and diskKey write qcow2 images of the
// same content (names of other outputs and checksums do not matter).
func diskKey(p *plan.Plan) string {
	var b strings.Builder
	for _, s := range p.Steps {
		var v any
		switch {
		case s.Partition != nil:
			v = s.Partition
		case s.Bootloader != nil:
			v = s.Bootloader
		case s.Output != nil && s.Output.Format == "qcow2":
			v = []any{s.Output.Compress, s.Output.QemuImgOptions, s.Output.Subformat}
		default:
			continue
		}
		j, err := json.Marshal(v)
		if err != nil {
			panic(err) // plan values always marshal
		}
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// compareQcow2Size fails t when dib's qcow2 is larger than the one DIB
// made of the same build (qcow2_bytes of the case).
func compareQcow2Size(t *testing.T, c imageCase, qcow2 string) {
	t.Helper()
	fi, err := os.Stat(qcow2)
	if err != nil {
		t.Fatalf("%s: %v", c.Case, err)
	}
	t.Logf("%s: qcow2 DIB %d bytes, dib %d bytes (%.3f)", c.Case, c.Qcow2Bytes, fi.Size(), float64(fi.Size())/float64(c.Qcow2Bytes))
	if fi.Size() > c.Qcow2Bytes {
		t.Errorf("%s: dib's qcow2 has %d bytes, DIB's %d: %d more", c.Case, fi.Size(), c.Qcow2Bytes, fi.Size()-c.Qcow2Bytes)
	}
}

// planOf compiles a Dibfile (JSON is YAML) the way `dib plan` does.
func planOf(t *testing.T, dibfile []byte) *plan.Plan {
	t.Helper()
	f := filepath.Join(t.TempDir(), "case.yaml")
	if err := os.WriteFile(f, dibfile, 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runDib(t, "plan", "--json", f)
	if code != 0 {
		t.Fatalf("plan of the case's Dibfile: exit %d\n%s", code, stderr)
	}
	p, err := plan.Read(strings.NewReader(stdout))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// manifestNames reads the package names of a dpkg_packages manifest
// ("name version arch" lines).
func manifestNames(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, strings.SplitN(f[0], ":", 2)[0])
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// comparePackages fails t unless dib's installed packages are DIB's, names
// only, apart from the differences the plan itself declares.
func comparePackages(t *testing.T, c imageCase, p *plan.Plan, got []string) {
	t.Helper()
	want := map[string]bool{}
	for _, pk := range c.InstalledPackages {
		want[strings.SplitN(pk.Name, ":", 2)[0]] = true
	}
	have := map[string]bool{}
	for _, n := range got {
		have[n] = true
	}
	declared := map[string]bool{}
	for _, d := range p.PackageDifferences {
		for _, n := range d.Packages {
			declared[n] = true
		}
	}
	var missing, extra, excused []string
	for n := range want {
		if !have[n] {
			if declared[n] {
				excused = append(excused, "-"+n)
			} else {
				missing = append(missing, n)
			}
		}
	}
	for n := range have {
		if !want[n] {
			if declared[n] {
				excused = append(excused, "+"+n)
			} else {
				extra = append(extra, n)
			}
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	slices.Sort(excused)
	t.Logf("%s: DIB %d packages, dib %d; declared differences: %v", c.Case, len(want), len(have), excused)
	if len(missing) > 0 {
		t.Errorf("%s: installed by DIB, not by dib (%d): %s", c.Case, len(missing), strings.Join(missing, " "))
	}
	if len(extra) > 0 {
		t.Errorf("%s: installed by dib, not by DIB (%d): %s", c.Case, len(extra), strings.Join(extra, " "))
	}
}

// vmBuild is the Debian VM example built once per test binary: the
// end-to-end test boots it, the oracle comparison reads its manifest.
var vmBuild struct {
	once   sync.Once
	dir    string
	plan   *plan.Plan
	stderr string
	code   int
}

const vmExample = "../../examples/debian-vm.yaml"

// sharedVMBuild builds examples/debian-vm.yaml (as the README says) once;
// the directory is removed when the test binary ends.
func sharedVMBuild(t *testing.T) (out string, p *plan.Plan) {
	t.Helper()
	t.Setenv("DEV_PASSWORD", "e2e-pass")
	vmBuild.once.Do(func() {
		code, stdout, stderr := runDib(t, "plan", "--json", vmExample)
		if code != 0 {
			vmBuild.code, vmBuild.stderr = code, "plan: "+stderr
			return
		}
		var err error
		if vmBuild.plan, err = plan.Read(strings.NewReader(stdout)); err != nil {
			vmBuild.code, vmBuild.stderr = 1, err.Error()
			return
		}
		if vmBuild.dir, err = os.MkdirTemp("", "dib-e2e-vm-"); err != nil {
			vmBuild.code, vmBuild.stderr = 1, err.Error()
			return
		}
		afterAll(vmBuild.dir)
		t.Setenv("DIB_CACHE_DIR", filepath.Join(vmBuild.dir, "step-cache")) // a cold build, not one from an earlier run
		vmBuild.code, _, vmBuild.stderr = runDib(t, "apply", "--install-host-tools", "--no-color", "-O", vmBuild.dir, vmExample)
	})
	if vmBuild.code != 0 {
		t.Fatalf("the VM example's build failed: exit %d\n%s", vmBuild.code, vmBuild.stderr)
	}
	return vmBuild.dir, vmBuild.plan
}

// TestOracleImagePackages: for every image case DIB recorded, the image
// dib builds from the same Dibfile has the same installed packages (names)
// and, where the case records the size of DIB's qcow2, a qcow2 no larger.
// A case whose packages (and, with a recorded size, disk) are decided
// exactly as the VM example's (same softwareKey and diskKey) is answered by
// the shared VM build; any other case is built on its own.
func TestOracleImagePackages(t *testing.T) {
	requireE2E(t)
	for name, c := range readImageCases(t) {
		t.Run(name, func(t *testing.T) {
			t.Setenv("DEV_PASSWORD", "e2e-pass")
			p := planOf(t, c.Dibfile)
			_, example := sharedVMBuild(t)
			var manifest, qcow2 string
			if softwareKey(p) == softwareKey(example) && (c.Qcow2Bytes == 0 || diskKey(p) == diskKey(example)) {
				manifest = filepath.Join(vmBuild.dir, example.Image.Name+".d", "dpkg_packages")
				qcow2 = filepath.Join(vmBuild.dir, example.Image.Name+".qcow2")
			} else {
				out := t.TempDir()
				f := filepath.Join(t.TempDir(), name+".yaml")
				if err := os.WriteFile(f, c.Dibfile, 0o644); err != nil {
					t.Fatal(err)
				}
				if code, _, stderr := runDib(t, "apply", "--install-host-tools", "--no-color", "-O", out, f); code != 0 {
					t.Fatalf("apply %s: exit %d\n%s", name, code, stderr)
				}
				manifest = filepath.Join(out, p.Image.Name+".d", "dpkg_packages")
				qcow2 = filepath.Join(out, p.Image.Name+".qcow2")
			}
			comparePackages(t, c, p, manifestNames(t, manifest))
			if c.Qcow2Bytes > 0 {
				compareQcow2Size(t, c, qcow2)
			}
		})
	}
}
