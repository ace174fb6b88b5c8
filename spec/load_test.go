package spec

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dibuild/dib/internal/golden"
	"github.com/dibuild/dib/spec/diag"
)

// testEnv is the environment from-env values are resolved in by the tests.
func testEnv(name string) (string, bool) {
	switch name {
	case "DEV_PASSWORD":
		return "s3cret", true
	}
	return "", false
}

// TestInvalid loads every file of the invalid corpus and compares its
// diagnostics, text rendering with positions, with the golden file.
func TestInvalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 40 {
		t.Fatalf("the invalid corpus has %d files, want at least 40", len(files))
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			f, ds := Load(name, src, testEnv)
			if !ds.HasErrors() {
				t.Fatalf("no error reported")
			}
			if f != nil {
				t.Errorf("Load returned a File together with errors")
			}
			for _, d := range ds {
				if d.File != name || d.Line == 0 || d.Col == 0 {
					t.Errorf("diagnostic without a full position: %+v", d)
				}
			}
			var buf bytes.Buffer
			if err := ds.WriteText(&buf); err != nil {
				t.Fatal(err)
			}
			golden.Compare(t, strings.TrimSuffix(path, ".yaml")+".golden", buf.Bytes())
		})
	}
}

// TestValid decodes the valid corpus and compares the typed result, with
// defaults applied, with a golden JSON rendering.
func TestValid(t *testing.T) {
	files, err := filepath.Glob("testdata/valid/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			f, ds := Load(name, src, testEnv)
			if ds.HasErrors() {
				t.Fatalf("unexpected errors:\n%v", ds)
			}
			out, err := json.MarshalIndent(f, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden.Compare(t, strings.TrimSuffix(path, ".yaml")+".json", append(out, '\n'))
		})
	}
}

// TestExamples checks that every example of the repository is valid,
// without even a warning.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 6 {
		t.Fatalf("found %d examples, want at least 6", len(files))
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			f, ds := Load(path, src, testEnv)
			if len(ds) > 0 {
				t.Fatalf("diagnostics:\n%v", ds)
			}
			if len(f.Images) == 0 {
				t.Fatal("no image")
			}
		})
	}
}

func TestLocate(t *testing.T) {
	src := []byte(`name: web        # 1
distro: debian-minimal
images_are_not_here: false
outputs:
  - qcow2
  - format: docker
    target: a:b
env:
  A/B: x
block-device: &bd
  - local_loop: {name: image0}
`)
	// The unknown key makes Load fail; the positions are still built.
	_, pos, ds := parse("Dibfile", src)
	if len(ds) != 0 {
		t.Fatalf("parse: %v", ds)
	}
	tests := []struct {
		pointer        string
		line, col      int
		keyLine, keyCl int
	}{
		{"", 1, 1, 1, 1},
		{"/name", 1, 7, 1, 1},
		{"/outputs", 5, 3, 4, 1},
		{"/outputs/0", 5, 5, 5, 5},
		{"/outputs/1", 6, 5, 6, 5},
		{"/outputs/1/target", 7, 13, 7, 5},
		{"/outputs/1/target/deeper", 7, 13, 7, 5},
		{"/outputs/7", 5, 3, 4, 1},
		{"/env/A~1B", 9, 8, 9, 3},
		{"/block-device/0/local_loop/name", 11, 24, 11, 18},
		{"/nothing", 1, 1, 1, 1},
	}
	for _, tt := range tests {
		l, c := pos.Locate(tt.pointer)
		kl, kc := pos.LocateKey(tt.pointer)
		if l != tt.line || c != tt.col || kl != tt.keyLine || kc != tt.keyCl {
			t.Errorf("%q: Locate %d:%d LocateKey %d:%d, want %d:%d and %d:%d", tt.pointer, l, c, kl, kc, tt.line, tt.col, tt.keyLine, tt.keyCl)
		}
	}
	var nilFile *File
	if l, c := nilFile.Locate("/name"); l != 0 || c != 0 {
		t.Errorf("nil File located %d:%d", l, c)
	}
}

func TestLoadSecrets(t *testing.T) {
	src := []byte(`distro: debian-minimal
arch: amd64
env:
  DIB_DEV_USER_PASSWORD: plain
  TOKEN: {secret: true, from-env: NOT_SET}
  KEY: {from-env: DEV_PASSWORD}
  V: {secret: true, value: v}
`)
	f, ds := Load("Dibfile", src, testEnv)
	if len(ds) != 0 {
		t.Fatal(ds)
	}
	got := map[string]EnvVar{}
	for _, e := range f.Images[0].Env {
		got[e.Name] = e
	}
	want := map[string]EnvVar{
		"DIB_DEV_USER_PASSWORD": {Name: "DIB_DEV_USER_PASSWORD", Value: "plain", Secret: true, Line: 4, Col: 3},
		"TOKEN":                 {Name: "TOKEN", Secret: true, FromEnv: "NOT_SET", Missing: true, Line: 5, Col: 3},
		"KEY":                   {Name: "KEY", Value: "s3cret", FromEnv: "DEV_PASSWORD", Line: 6, Col: 3},
		"V":                     {Name: "V", Value: "v", Secret: true, Line: 7, Col: 3},
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: got %+v, want %+v", k, got[k], w)
		}
	}
	// A nil lookup marks every from-env value missing.
	f, _ = Load("Dibfile", src, nil)
	for _, e := range f.Images[0].Env {
		if e.FromEnv != "" && !e.Missing {
			t.Errorf("%s not missing with a nil lookup", e.Name)
		}
	}
}

func TestDefaults(t *testing.T) {
	f, ds := Load("Dibfile", []byte("distro: debian-minimal\n"), nil)
	if len(ds) != 0 {
		t.Fatal(ds)
	}
	img := f.Images[0]
	if img.Name != "image" || img.Arch != HostArch() || img.FSType != "ext4" || !img.Tmpfs || img.MinTmpfs != 2 ||
		img.InstallTypes.Default != "source" || len(img.Outputs) != 1 || img.Outputs[0].Format != "qcow2" || !img.Outputs[0].Compress {
		t.Errorf("defaults not applied: %+v", img)
	}
	if img.KeyPointer("distro") != "/distro" || img.KeyPointer("name") != "" {
		t.Errorf("KeyPointer: %q %q", img.KeyPointer("distro"), img.KeyPointer("name"))
	}
}

func TestNormalizeArch(t *testing.T) {
	for in, want := range map[string]string{"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf", "ppc64le": "ppc64le", "s390x": "s390x"} {
		if got := NormalizeArch(in); got != want {
			t.Errorf("NormalizeArch(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   any
		want int64
	}{
		{"4GiB", 4 << 30},
		{"5G", 5e9},
		{"512MiB", 512 << 20},
		{"1.5 GB", 1.5e9},
		{uint64(2), 2 << 30},
		{2.5, 5 << 29},
		{"100B", 100},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%v) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []any{"4 gigs", "0GiB", float64(0), "GiB", nil} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%v) accepted", bad)
		}
	}
}

// TestDeterministic loads the same file many times: map order must never
// show in the diagnostics or the decoded images.
func TestDeterministic(t *testing.T) {
	src, err := os.ReadFile("testdata/invalid/56-multi-image-errors.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, first := Load("f", src, nil)
	for i := 0; i < 20; i++ {
		_, ds := Load("f", src, nil)
		if diag.Diagnostics(ds).Error() != first.Error() {
			t.Fatalf("run %d differs:\n%v\nvs\n%v", i, ds, first)
		}
	}
}

func TestNormalizeDistro(t *testing.T) {
	d, c := NormalizeDistro("debian-minimal", "bookworm", "")
	if d != (Distro{Element: "debian-minimal", Release: "bookworm"}) || len(c) != 0 {
		t.Errorf("string form: %+v %v", d, c)
	}
	d, c = NormalizeDistro(map[string]any{"name": "ubuntu-minimal", "release": "noble"}, "jammy", "http://m")
	if d != (Distro{Element: "ubuntu-minimal", Release: "noble", Mirror: "http://m"}) || len(c) != 1 || c[0] != "release" {
		t.Errorf("short form: %+v %v", d, c)
	}
}

func BenchmarkLoad(b *testing.B) {
	src, err := os.ReadFile("testdata/valid/full.yaml")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, ds := Load("f", src, testEnv); ds.HasErrors() {
			b.Fatal(ds)
		}
	}
}
