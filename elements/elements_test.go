package elements

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/dibuild/dib/internal/fixture"
	"github.com/dibuild/dib/internal/golden"
)

// requireTool skips when a host tool is missing, except in CI
// (DIB_REQUIRE_INTEGRATION=1), where the test fails instead.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("%s is required (DIB_REQUIRE_INTEGRATION=1) but not installed", name)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

// allFiles lists every regular file of FS, sorted.
func allFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := fs.WalkDir(FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

func TestExecutablesManifest(t *testing.T) {
	var onDisk []string
	for _, name := range Names() {
		err := filepath.WalkDir(name, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if fi.Mode()&0o111 != 0 {
				onDisk = append(onDisk, filepath.ToSlash(p))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(onDisk)
	if golden.Update() {
		var b bytes.Buffer
		b.WriteString("# Files of the built-in elements that are executable (mode 0755 in FS()).\n")
		b.WriteString("# Generated from the checkout's modes by: go test ./elements -run TestExecutablesManifest -update\n")
		for _, p := range onDisk {
			b.WriteString(p + "\n")
		}
		if err := os.WriteFile("executables.txt", b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	manifest := parseExecutables(executables)
	var listed []string
	for p := range manifest {
		listed = append(listed, p)
	}
	sort.Strings(listed)
	if strings.Join(listed, "\n") != strings.Join(onDisk, "\n") {
		t.Errorf("executables.txt does not match the files' modes; run go test ./elements -update\nlisted:  %v\non disk: %v", listed, onDisk)
	}
}

func TestFSModes(t *testing.T) {
	fsys := FS()
	exec := parseExecutables(executables)
	for _, p := range allFiles(t) {
		want := FileMode
		if exec[p] {
			want = ExecMode
		}
		fi, err := fs.Stat(fsys, p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("Stat(%s).Mode() = %v, want %v", p, fi.Mode(), want)
		}
		f, err := fsys.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		fi2, err := f.Stat()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if fi2.Mode() != want {
			t.Errorf("Open(%s).Stat().Mode() = %v, want %v", p, fi2.Mode(), want)
		}
		entries, err := fs.ReadDir(fsys, path.Dir(p))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() != path.Base(p) {
				continue
			}
			info, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			if info.Mode() != want {
				t.Errorf("ReadDir entry %s mode = %v, want %v", p, info.Mode(), want)
			}
		}
	}
	// A few files whose mode matters at run time.
	for p, want := range map[string]fs.FileMode{
		"dpkg/bin/install-packages":                      ExecMode,
		"growroot/static/usr/local/sbin/growroot":        ExecMode,
		"dpkg/environment.d/10-dpkg.bash":                FileMode,
		"enable-serial-console/install.d/ttySx.conf":     FileMode,
		"block-device-efi/block-device-default.yaml":     FileMode,
		"package-installs/install.d/01-package-installs": ExecMode,
	} {
		fi, err := fs.Stat(fsys, p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
	}
	fi, err := fs.Stat(fsys, "dpkg/bin")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != DirMode {
		t.Errorf("dpkg/bin: mode %v, want %v", fi.Mode(), DirMode)
	}
	for p := range exec {
		if _, err := fs.Stat(fsys, p); err != nil {
			t.Errorf("executables.txt lists %s: %v", p, err)
		}
	}
}

func TestEmbedListsEveryElement(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() && e.Name() != "testdata" {
			dirs = append(dirs, e.Name())
		}
	}
	if got, want := strings.Join(Names(), " "), strings.Join(dirs, " "); got != want {
		t.Errorf("embedded elements:\n%s\ndirectories:\n%s\n(add new elements to the go:embed lines)", got, want)
	}
}

func readLines(t *testing.T, p string) []string {
	t.Helper()
	b, err := fs.ReadFile(FS(), p)
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func TestEveryElementHasREADME(t *testing.T) {
	for _, name := range Names() {
		b, err := fs.ReadFile(FS(), name+"/README.md")
		if err != nil {
			t.Errorf("%s: no README.md", name)
			continue
		}
		if !bytes.HasPrefix(b, []byte("# "+name+"\n")) {
			t.Errorf("%s/README.md does not start with '# %s'", name, name)
		}
	}
}

// dibOnly are element names our element-deps may name that dib does not
// ship (none today: every dependency is built in or a provided name).
var dibOnly = map[string]bool{}

func TestElementDepsResolve(t *testing.T) {
	known := map[string]bool{}
	for _, name := range Names() {
		known[name] = true
		for _, p := range readLines(t, name+"/element-provides") {
			known[p] = true
		}
	}
	for _, name := range Names() {
		for _, dep := range readLines(t, name+"/element-deps") {
			if !known[dep] && !dibOnly[dep] {
				t.Errorf("%s/element-deps names unknown element %q", name, dep)
			}
		}
	}
}

func skeletonDir(t *testing.T) string {
	t.Helper()
	return fixture.SkeletonDir(t)
}

// omittedHooks are executable files of DIB's elements we deliberately do
// not ship (see the elements' READMEs).
var omittedHooks = map[string]string{
	"sysprep/bin/extract-image":                    "needs qemu-nbd; not a build helper",
	"package-installs/bin/package-installs-squash": "squashing happens at plan time",
}

// omittedDeps are element-deps of DIB's elements we deliberately do not
// keep (see the elements' READMEs).
var omittedDeps = map[string]string{
	"dracut-ramdisk/deploy-targetcli": "deprecated iSCSI deploy pieces on Python 2; not shipped",
}

// TestSameGraphAsDIB checks that our elements keep DIB's element-deps and
// element-provides, and every executable hook and helper name DIB has
// (so hook ordering and Dibfile habits carry over).
func TestSameGraphAsDIB(t *testing.T) {
	skel := skeletonDir(t)
	phaseRe := regexp.MustCompile(`^[a-z-]+\.d$`)
	for _, name := range Names() {
		sdir := filepath.Join(skel, name)
		if _, err := os.Stat(sdir); err != nil {
			continue // dib-only element
		}
		for _, f := range []string{"element-deps", "element-provides"} {
			want := ""
			if b, err := os.ReadFile(filepath.Join(sdir, f)); err == nil {
				var kept []string
				for _, d := range strings.Fields(string(b)) {
					if _, omitted := omittedDeps[name+"/"+d]; !omitted || f != "element-deps" {
						kept = append(kept, d)
					}
				}
				want = strings.Join(kept, " ")
			}
			got := strings.Join(readLines(t, name+"/"+f), " ")
			if got != want {
				t.Errorf("%s/%s = %q, DIB has %q", name, f, got, want)
			}
		}
		err := filepath.WalkDir(sdir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(skel, p)
			rel = filepath.ToSlash(rel)
			parts := strings.Split(rel, "/")
			if len(parts) != 3 || (!phaseRe.MatchString(parts[1]) && parts[1] != "bin") || parts[1] == "environment.d" {
				return nil
			}
			fi, err := d.Info()
			if err != nil || fi.Mode()&0o111 == 0 {
				return err
			}
			if _, ok := omittedHooks[rel]; ok {
				return nil
			}
			ours, err := fs.Stat(FS(), rel)
			if err != nil {
				t.Errorf("%s: DIB has this executable hook, we do not", rel)
				return nil
			}
			if ours.Mode() != ExecMode {
				t.Errorf("%s: executable in DIB, mode %v here", rel, ours.Mode())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// environment.d file names decide the sourcing order.
		sEnv, _ := os.ReadDir(filepath.Join(sdir, "environment.d"))
		oEnv, _ := fs.ReadDir(FS(), name+"/environment.d")
		var s, o []string
		for _, e := range sEnv {
			s = append(s, e.Name())
		}
		for _, e := range oEnv {
			o = append(o, e.Name())
		}
		if strings.Join(s, " ") != strings.Join(o, " ") {
			t.Errorf("%s/environment.d: %v, DIB has %v", name, o, s)
		}
	}
}

// scripts returns the executable shell scripts and the environment.d files.
func scripts(t *testing.T) (execs, envs []string) {
	t.Helper()
	exec := parseExecutables(executables)
	for _, p := range allFiles(t) {
		if strings.Contains(p, "/environment.d/") {
			envs = append(envs, p)
			continue
		}
		if !exec[p] {
			continue
		}
		b, _ := fs.ReadFile(FS(), p)
		if bytes.HasPrefix(b, []byte("#!/bin/bash")) || bytes.HasPrefix(b, []byte("#!/bin/sh")) {
			execs = append(execs, p)
		}
	}
	return execs, envs
}

// dataDirs are *.d directories of elements that dib-run-parts never runs:
// sourced (environment.d) or read by other hooks (the ramdisk's and
// modprobe's).
var dataDirs = map[string]bool{"environment.d": true, "binary-deps.d": true, "init.d": true,
	"udev.d": true, "ramdisk-install.d": true, "modprobe.d": true, "dracut-drivers.d": true}

// TestHookConventions: every file in a phase directory DIB runs is
// executable (except the data files DIB also keeps there), starts with a
// shebang, and hooks honour DIB_DEBUG_TRACE and set -eu -o pipefail.
func TestHookConventions(t *testing.T) {
	exec := parseExecutables(executables)
	runnable := regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	phase := regexp.MustCompile(`^[^/]+/([a-z-]+\.d)/([^/]+)$`)
	for _, p := range allFiles(t) {
		m := phase.FindStringSubmatch(p)
		if m == nil || dataDirs[m[1]] {
			continue
		}
		if !runnable.MatchString(m[2]) {
			continue // data file: DIB skips names with a dot whatever their mode
		}
		if !exec[p] {
			t.Errorf("%s: hook is not executable, DIB would skip it", p)
			continue
		}
		b, _ := fs.ReadFile(FS(), p)
		s := string(b)
		if !strings.HasPrefix(s, "#!/bin/bash\n") {
			t.Errorf("%s: does not start with #!/bin/bash", p)
		}
		if !strings.Contains(s, `if [ "${DIB_DEBUG_TRACE:-0}" -gt 0 ]; then set -x; fi`) {
			t.Errorf("%s: no DIB_DEBUG_TRACE line", p)
		}
		if !strings.Contains(s, "set -eu\nset -o pipefail\n") {
			t.Errorf("%s: no set -eu / set -o pipefail", p)
		}
	}
}

func TestBashSyntax(t *testing.T) {
	t.Parallel()
	bash := requireTool(t, "bash")
	execs, envs := scripts(t)
	for _, p := range append(execs, envs...) {
		b, _ := fs.ReadFile(FS(), p)
		cmd := exec.Command(bash, "-n")
		cmd.Stdin = bytes.NewReader(b)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", p, err, out)
		}
	}
}

// TestShellcheck fails on shellcheck warnings and errors (CI installs it).
func TestShellcheck(t *testing.T) {
	t.Parallel()
	sc := requireTool(t, "shellcheck")
	execs, envs := scripts(t)
	args := []string{"-S", "warning", "-x"}
	for _, p := range execs {
		args = append(args, p)
	}
	if out, err := exec.Command(sc, args...).CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
	args = []string{"-S", "warning", "-s", "bash"}
	args = append(args, envs...)
	if out, err := exec.Command(sc, args...).CombinedOutput(); err != nil {
		t.Errorf("shellcheck (environment.d): %v\n%s", err, out)
	}
}

// TestPkgMapFormat: every pkg-map is DIB's JSON (family/distro/release/
// default, names mapped to strings).
func TestPkgMapFormat(t *testing.T) {
	for _, name := range Names() {
		b, err := fs.ReadFile(FS(), name+"/pkg-map")
		if err != nil {
			continue
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("%s/pkg-map: %v", name, err)
			continue
		}
		for k, v := range m {
			var err error
			switch k {
			case "default":
				var x map[string]string
				err = json.Unmarshal(v, &x)
			case "family", "distro":
				var x map[string]map[string]string
				err = json.Unmarshal(v, &x)
			case "release":
				var x map[string]map[string]map[string]string
				err = json.Unmarshal(v, &x)
			default:
				t.Errorf("%s/pkg-map: unknown key %q", name, k)
			}
			if err != nil {
				t.Errorf("%s/pkg-map: %s: %v", name, k, err)
			}
		}
	}
}

// TestPackageInstallsFormat: every package-installs.yaml uses DIB's syntax.
func TestPackageInstallsFormat(t *testing.T) {
	allowed := map[string]bool{"phase": true, "uninstall": true, "arch": true, "not-arch": true,
		"when": true, "dib_python_version": true, "installtype": true}
	phases := map[string]bool{"pre-install.d": true, "install.d": true, "post-install.d": true}
	check := func(name, pkg string, attrs map[string]any) {
		for k, v := range attrs {
			if !allowed[k] {
				t.Errorf("%s: %s: unknown key %q", name, pkg, k)
			}
			if k == "phase" && !phases[v.(string)] {
				t.Errorf("%s: %s: bad phase %v", name, pkg, v)
			}
		}
	}
	for _, name := range Names() {
		b, err := fs.ReadFile(FS(), name+"/package-installs.yaml")
		if err != nil {
			continue
		}
		var m map[string]any
		if err := yaml.Unmarshal(b, &m); err != nil {
			t.Errorf("%s/package-installs.yaml: %v", name, err)
			continue
		}
		for pkg, v := range m {
			switch a := v.(type) {
			case nil:
			case map[string]any:
				check(name, pkg, a)
			case []any:
				for _, e := range a {
					if em, ok := e.(map[string]any); ok {
						check(name, pkg, em)
					} else {
						t.Errorf("%s: %s: list entry %v is not a mapping", name, pkg, e)
					}
				}
			default:
				t.Errorf("%s: %s: unexpected value %v", name, pkg, v)
			}
		}
	}
}

// TestBlockDeviceLayoutsMatchDIB: our default layouts are DIB's (the same
// YAML data, comments aside).
func TestBlockDeviceLayoutsMatchDIB(t *testing.T) {
	skel := skeletonDir(t)
	for _, name := range Names() {
		if !strings.HasPrefix(name, "block-device-") {
			continue
		}
		ents, err := fs.ReadDir(FS(), name)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".yaml") {
				continue
			}
			ours, _ := fs.ReadFile(FS(), name+"/"+e.Name())
			theirs, err := os.ReadFile(filepath.Join(skel, name, e.Name()))
			if err != nil {
				t.Errorf("%s/%s: not in DIB", name, e.Name())
				continue
			}
			var a, b any
			if err := yaml.Unmarshal(ours, &a); err != nil {
				t.Fatal(err)
			}
			if err := yaml.Unmarshal(theirs, &b); err != nil {
				t.Fatal(err)
			}
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			if string(ja) != string(jb) {
				t.Errorf("%s/%s differs from DIB's:\nours:  %s\nDIB's: %s", name, e.Name(), ja, jb)
			}
		}
	}
}

// globalVars are variables every hook may read that are documented by the
// runtime or by the element that defines them, not by each user.
var globalVars = map[string]bool{
	"DIB_DEBUG_TRACE": true, "DIB_RELEASE": true, "DIB_INIT_SYSTEM": true,
	"DIB_MANIFEST_IMAGE_DIR": true, "DIB_ROOT_LABEL": true, "DIB_OFFLINE": true,
	"DIB_IMAGE_CACHE": true, "DIB_DEFAULT_INSTALLTYPE": true, "DIB_PYTHON": true,
	"DIB_APT_LOCAL_CACHE": true, "DIB_AVOID_PACKAGES_UPDATE": true,
}

// TestREADMEDocumentsVariables: every DIB_* variable an element reads or
// sets is named in its README (or is one of globalVars).
func TestREADMEDocumentsVariables(t *testing.T) {
	varRe := regexp.MustCompile(`\bDIB_[A-Z0-9_]*[A-Z0-9]\b`)
	for _, name := range Names() {
		readme, _ := fs.ReadFile(FS(), name+"/README.md")
		seen := map[string]bool{}
		err := fs.WalkDir(FS(), name, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasSuffix(p, "README.md") {
				return err
			}
			b, err := fs.ReadFile(FS(), p)
			if err != nil {
				return err
			}
			for _, v := range varRe.FindAllString(string(b), -1) {
				if seen[v] || globalVars[v] {
					continue
				}
				seen[v] = true
				if !bytes.Contains(readme, []byte(v)) {
					t.Errorf("%s: %s uses %s, README.md does not mention it", name, p, v)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
