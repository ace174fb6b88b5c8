package element

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/dibuild/dib/spec/diag"
)

func TestInputList(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		{"vm adds mbr", Options{Elements: []string{"debian", "vm"}}, []string{"base", "debian", "vm", "block-device-mbr"}},
		{"vm on arm64 adds efi", Options{Elements: []string{"vm"}, Arch: "arm64"}, []string{"base", "vm", "block-device-efi"}},
		{"vm on aarch64 adds efi", Options{Elements: []string{"vm"}, Arch: "aarch64"}, []string{"base", "vm", "block-device-efi"}},
		{"ARCH is a regex searched in 'arm64 aarch64'", Options{Elements: []string{"vm"}, Arch: "arm"}, []string{"base", "vm", "block-device-efi"}},
		{"vm on ppc64el adds mbr", Options{Elements: []string{"vm"}, Arch: "ppc64el"}, []string{"base", "vm", "block-device-mbr"}},
		{"a named block-device element wins", Options{Elements: []string{"vm", "block-device-gpt"}}, []string{"base", "vm", "block-device-gpt"}},
		{"vm must be exact", Options{Elements: []string{"vmx"}}, []string{"base", "vmx"}},
		{"skip base", Options{Elements: []string{"a"}, SkipBase: true}, []string{"a"}},
		{"ramdisk default element", Options{Elements: []string{"a"}, Ramdisk: true}, []string{"ramdisk", "base", "a"}},
		{"ramdisk element", Options{Elements: []string{"a"}, Ramdisk: true, RamdiskElement: "dracut-ramdisk"}, []string{"dracut-ramdisk", "base", "a"}},
		{"no elements", Options{}, []string{"base"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := inputList(tt.opts)
			if !slices.Equal(got, tt.want) || len(why) != len(got) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestExpandErrors(t *testing.T) {
	base := with(osFS(), fstest.MapFS{
		"comment/element-deps":      file("os\n# a comment\n"),
		"baddep/element-deps":       file("\n  os  \r\nnope\n"),
		"os2/element-provides":      file("operating-system\n"),
		"provider/element-provides": file("virt\n"),
		"user/element-deps":         file("virt\n"),
		"cyc-a/element-deps":        file("cyc-b\nos\n"),
		"cyc-b/element-deps":        file("cyc-a\n"),
		"noos/element-deps":         file(""),
	})
	tests := []struct {
		name     string
		elements []string
		kind     string
		message  string
		logged   []string
		file     string
		line     int
		hint     string
	}{
		{name: "comment line is an element", elements: []string{"comment"}, kind: KindMissingElement,
			message: "Element '# a comment' not found", file: "test/comment/element-deps", line: 2, hint: "no comments"},
		{name: "missing dependency names its line", elements: []string{"baddep"}, kind: KindMissingElement,
			message: "Element 'nope' not found", file: "test/baddep/element-deps", line: 3, hint: "depends on \"nope\""},
		{name: "unknown requested element", elements: []string{"os", "zzz"}, kind: KindMissingElement,
			message: "Element 'zzz' not found", hint: "requested"},
		{name: "near miss is suggested", elements: []string{"os", "provder"}, kind: KindMissingElement,
			message: "Element 'provder' not found", hint: "did you mean provider?"},
		{name: "two providers", elements: []string{"os", "os2"}, kind: KindAlreadyProvided,
			message: "operating-system: already provided by ['os']", file: "test/os2/element-provides", line: 1},
		{name: "same element twice", elements: []string{"os", "os"}, kind: KindAlreadyProvided,
			message: "operating-system: already provided by ['os']", file: "test/os/element-provides", line: 1, hint: "twice"},
		{name: "requested and provided", elements: []string{"os", "provider", "virt"}, kind: KindAlreadyProvided,
			logged: []string{"The following elements are already provided by another element", "virt : already provided by ['provider']"}},
		{name: "no operating system", elements: []string{"noos"}, kind: KindMissingOS,
			message: "Please include an operating system element", hint: "os, os2"},
		{name: "cycle accepted", elements: []string{"cyc-a"}},
		{name: "provided dependency is dropped", elements: []string{"os", "user", "provider"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, ds := resolveMap(t, base, tt.elements...)
			if tt.kind == "" {
				if res.Failure != nil || ds.HasErrors() {
					t.Fatalf("failed: %+v %v", res.Failure, ds)
				}
				return
			}
			if res.Failure == nil {
				t.Fatalf("no failure")
			}
			if res.Failure.Kind != tt.kind || res.Failure.Message != tt.message || !slices.Equal(res.Failure.Logged, tt.logged) {
				t.Errorf("failure %+v, want %s %q %q", res.Failure, tt.kind, tt.message, tt.logged)
			}
			if len(ds) != 1 || ds[0].Severity != diag.Error {
				t.Fatalf("diagnostics %v", ds)
			}
			d := ds[0]
			if d.File != tt.file || d.Line != tt.line {
				t.Errorf("at %s:%d, want %s:%d", d.File, d.Line, tt.file, tt.line)
			}
			if !strings.Contains(d.Hint, tt.hint) || d.Message == "" {
				t.Errorf("message %q hint %q, want hint with %q", d.Message, d.Hint, tt.hint)
			}
		})
	}
	res, _ := resolveMap(t, base, "os", "user", "provider")
	if !slices.Equal(res.Expanded, []string{"os", "provider", "user"}) || !reflect.DeepEqual(res.ProvidedBy, map[string][]string{"operating-system": {"os"}, "virt": {"provider"}}) {
		t.Errorf("expanded %q provided by %v", res.Expanded, res.ProvidedBy)
	}
}

func TestSearchPath(t *testing.T) {
	user := fstest.MapFS{"os/element-provides": file("operating-system\n")} // no hooks
	builtin := with(osFS(), fstest.MapFS{"extra/install.d/10-x": exe("")})
	res, ds := Resolve(Options{Path: []Source{{"user", user}, {BuiltinName, builtin}}, Elements: []string{"os", "extra"}, SkipBase: true})
	if ds.HasErrors() {
		t.Fatal(ds)
	}
	// The whole os directory comes from the first entry: no root.d hook.
	if p := phase(t, res, "root.d"); p.Present || len(p.Scripts) != 0 {
		t.Errorf("root.d %+v, want absent", p)
	}
	if got := res.Elements[0].Source + " " + res.Elements[1].Source; got != "builtin user" {
		t.Errorf("sources %q", got)
	}
	if !slices.Equal(res.Elements[1].Hides, []string{"builtin"}) || res.Elements[0].Hides != nil {
		t.Errorf("hides %+v", res.Elements)
	}

	t.Run("not a directory", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		res, ds := Resolve(Options{Path: []Source{{f, os.DirFS(f)}, {"b", builtin}, {"/nonexistent", os.DirFS("/nonexistent")}}, Elements: []string{"os"}})
		// DIB walks the path in reverse: the last bad entry is reported.
		want := "ELEMENTS_PATH entry '/nonexistent' is not a directory "
		if res.Failure == nil || res.Failure.Kind != KindInvalidDir || res.Failure.Message != want || !ds.HasErrors() {
			t.Errorf("failure %+v", res.Failure)
		}
	})

	t.Run("symlinked element is named after its target", func(t *testing.T) {
		m := with(osFS(), fstest.MapFS{"real/install.d/10-x": exe(""), "alias": link("real")})
		res, ds := resolveMap(t, m, "os", "real")
		if ds.HasErrors() || res.Elements[1].Dir != "alias" && res.Elements[1].Dir != "real" {
			t.Fatalf("%v %+v", ds, res.Elements)
		}
		if _, ds := resolveMap(t, m, "os", "alias"); !ds.HasErrors() {
			t.Errorf("alias resolved; DIB names a symlinked element after its real path")
		}
	})
}

func TestHookMerge(t *testing.T) {
	m := with(osFS(), fstest.MapFS{
		"a/static/etc/same.conf":  file("a"),
		"a/static/etc/equal.conf": file("x"),
		"a/install.d/10-a":        exe("a"),
		"a/install.d/20-link":     link("10-b"), // resolved in the merged tree
		"a/install.d/.hidden":     exe(""),
		"a/tests/README":          file(""),
		"a/__pycache__/x.pyc":     file(""),
		"a/element-deps":          file("b\n"),
		"a/x.pyc":                 file(""),
		"b/static/etc/same.conf":  file("b"),
		"b/static/etc/equal.conf": file("x"),
		"b/install.d/10-b":        exe("b"),
		"b/install.d/sub/inner":   exe(""),
		"b/init.d/10-init":        exe(""),
		"b/element-deps":          file("os\n"),
	})
	res, ds := resolveMap(t, m, "a")
	if ds.HasErrors() {
		t.Fatal(ds)
	}
	paths := map[string]File{}
	for _, f := range res.Files {
		paths[f.Path] = f
	}
	for _, p := range []string{"install.d/.hidden", "tests", "tests/README", "__pycache__", "x.pyc"} {
		if _, ok := paths[p]; ok {
			t.Errorf("%s copied", p)
		}
	}
	// The element copied last (DIB's bash order) wins.
	last, first := "b", "a"
	if slices.Index(res.CopyOrder, "a") > slices.Index(res.CopyOrder, "b") {
		last, first = "a", "b"
	}
	if f := paths["static/etc/same.conf"]; string(f.Content) != last || f.Element != last {
		t.Errorf("same.conf %+v, want %s's (copy order %q)", f, last, res.CopyOrder)
	}
	if f := paths["element-deps"]; f.Element != last {
		t.Errorf("root element-deps %+v", f)
	}
	if f := paths["install.d/20-link"]; f.LinkTarget != "10-b" || f.Mode&fs.ModeSymlink == 0 {
		t.Errorf("link %+v", f)
	}
	if f := paths["install.d/10-a"]; f.SHA256 != "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb" || f.Mode != 0o755 {
		t.Errorf("10-a %+v", f)
	}
	w := messages(ds, diag.Warning)
	if len(w) != 1 || !strings.Contains(w[0], "static/etc/same.conf comes from both "+first+" and "+last) {
		t.Errorf("warnings %q, want one about same.conf", w)
	}
	p := phase(t, res, "install.d")
	if got := names(p.Scripts); got != "10-a 10-b 20-link" {
		t.Errorf("install.d %q", got)
	}
	if s := p.Scripts[2]; s.Element != "a" || s.Target != "install.d/10-b" {
		t.Errorf("link script %+v", s)
	}
	if len(p.Skipped) != 1 || p.Skipped[0].Reason != ReasonDirectory || !slices.Equal(p.Skipped[0].Elements, []string{"b"}) {
		t.Errorf("skipped %+v", p.Skipped)
	}
	if len(res.OtherDirs) != 1 || res.OtherDirs[0].Name != "init.d" {
		t.Errorf("other dirs %+v", res.OtherDirs)
	}

	t.Run("duplicate hook", func(t *testing.T) {
		m := with(osFS(), fstest.MapFS{"d1/install.d/50-dup": exe("1"), "d2/install.d/50-dup": exe("1")})
		res, ds := resolveMap(t, m, "os", "d1", "d2")
		if res.Failure == nil || res.Failure.Message != "There is a duplicated hook in your elements: /install.d/50-dup" || !ds.HasErrors() {
			t.Fatalf("%+v %v", res.Failure, ds)
		}
		second, other := "d2", "d1"
		if slices.Index(res.CopyOrder, "d1") > slices.Index(res.CopyOrder, "d2") {
			second, other = "d1", "d2"
		}
		if !strings.Contains(ds[0].Hint, other) || ds[0].File != "test/"+second+"/install.d/50-dup" {
			t.Errorf("diag %+v", ds[0])
		}
		if !slices.Equal(res.Expanded, []string{"d1", "d2", "os"}) {
			t.Errorf("expanded %q", res.Expanded)
		}
	})
	t.Run("duplicate environment.d", func(t *testing.T) {
		m := with(osFS(), fstest.MapFS{"e1/environment.d/10-a": file("")})
		res, _ := resolveMap(t, m, "os", "e1")
		if res.Failure == nil || res.Failure.Kind != KindDuplicateHook || res.Failure.Message != "There is a duplicated hook in your elements: /environment.d/10-a" {
			t.Fatalf("%+v", res.Failure)
		}
	})
	t.Run("file over directory", func(t *testing.T) {
		m := with(osFS(), fstest.MapFS{"f1/install.d/x/y": exe(""), "f2/install.d/x": exe("")})
		res, ds := resolveMap(t, m, "os", "f1", "f2")
		if res.Failure == nil || !ds.HasErrors() {
			t.Fatalf("no failure")
		}
	})
}

func TestEnvironmentAndBlockDevice(t *testing.T) {
	m := with(osFS(), fstest.MapFS{
		"e/environment.d/9-b":                      file(""),
		"e/environment.d/10-A.bash":                file(""),
		"e/environment.d/bad~name":                 file(""),
		"e/environment.d/dir/x":                    file(""),
		"e/environment.d/11-dib-install-type.bash": file("mine"),
		"e/environment.d/broken":                   link("nothing"),
		"bd1/block-device-default.yaml":            file("default"),
		"bd1/block-device-ppc64el.yaml":            file("ppc"),
		"bd2/block-device-amd64.yaml":              file("amd64"),
	})
	res, ds := resolveMap(t, m, "os", "e", "bd1")
	var env, root []string
	for _, e := range res.EnvironmentD {
		env = append(env, e.File+"="+e.Element)
	}
	for _, e := range res.EnvironmentDRoot {
		root = append(root, e.File+"="+e.Element)
	}
	if want := []string{"10-A.bash=e", "10-a=os", "11-dib-install-type.bash=e", "9-b=e"}; !slices.Equal(root, want) {
		t.Errorf("root.d environment %q, want %q", root, want)
	}
	if want := []string{"10-A.bash=e", "10-a=os", "11-dib-install-type.bash=(disk-image-create)", "9-b=e"}; !slices.Equal(env, want) {
		t.Errorf("environment %q, want %q", env, want)
	}
	if res.BlockDevice.Label != "test:bd1/block-device-default.yaml" || string(res.BlockDevice.Content) != "default" || ds.HasErrors() {
		t.Errorf("block device %+v", res.BlockDevice)
	}
	for _, arch := range []string{"ppc64le", "ppc64el", "ppc64"} {
		res, _ := Resolve(Options{Path: []Source{{"test", m}}, Elements: []string{"os", "bd1"}, SkipBase: true, Arch: arch})
		if res.BlockDevice.File != "block-device-ppc64el.yaml" {
			t.Errorf("%s: %+v", arch, res.BlockDevice)
		}
	}
	res, ds = resolveMap(t, m, "os", "bd1", "bd2")
	if res.BlockDevice.Element != "bd1" || len(messages(ds, diag.Warning)) != 1 {
		t.Errorf("two configs: %+v %v", res.BlockDevice, ds)
	}
	res, _ = resolveMap(t, m, "os")
	if !res.BlockDevice.Fallback || res.BlockDevice.Label != FallbackBlockDevice {
		t.Errorf("fallback %+v", res.BlockDevice)
	}
}

func TestDeterministic(t *testing.T) {
	_, skeleton := oracleDirs(t)
	if _, err := os.Stat(skeleton); err != nil {
		t.Skipf("no DIB skeleton at %s", skeleton)
	}
	a, _ := Resolve(Options{Path: []Source{{"bundled", os.DirFS(skeleton)}}, Elements: []string{"ubuntu-minimal", "vm", "growroot", "cloud-init-datasources"}})
	b, _ := Resolve(Options{Path: []Source{{"bundled", os.DirFS(skeleton)}}, Elements: []string{"cloud-init-datasources", "growroot", "vm", "ubuntu-minimal"}})
	if !slices.Equal(a.Expanded, b.Expanded) || !reflect.DeepEqual(a.Files, b.Files) || !reflect.DeepEqual(a.Phases, b.Phases) {
		t.Errorf("element order changes the result")
	}
}
