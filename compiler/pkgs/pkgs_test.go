package pkgs

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/dibuild/dib/internal/fixture"
)

func mapfs(files map[string]string) fstest.MapFS {
	m := fstest.MapFS{}
	for k, v := range files {
		m[k] = &fstest.MapFile{Data: []byte(v)}
	}
	return m
}

const bootloaderMap = `{
  "family": {"redhat": {"grub-pc": "grub2-tools grub2", "dkms_package": ""}},
  "distro": {"fedora": {"grub-pc": "grub2-pc"}},
  "release": {"centos": {"9": {"grub-pc": "grub2-pc-9"}}},
  "default": {"grub-pc": "grub-pc", "dkms_package": "dkms"}
}`

func TestMapPrecedence(t *testing.T) {
	m, err := ParseMap([]byte(bootloaderMap))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		target Target
		name   string
		want   []string
		note   string
	}{
		{Target{Distro: "debian", Family: "debian"}, "grub-pc", []string{"grub-pc"}, "default"},
		{Target{Distro: "rhel", Family: "redhat", Release: "8"}, "grub-pc", []string{"grub2-tools", "grub2"}, "redhat family"},
		{Target{Distro: "fedora", Family: "redhat"}, "grub-pc", []string{"grub2-pc"}, "distro fedora"},
		{Target{Distro: "centos", Family: "redhat", Release: "9"}, "grub-pc", []string{"grub2-pc-9"}, "release centos 9"},
		{Target{Distro: "centos", Family: "redhat", Release: "9"}, "dkms_package", []string{}, "redhat family"},
	} {
		got, note, ok := m.Lookup(tc.target, tc.name)
		if !ok || !reflect.DeepEqual(got, tc.want) || note != tc.note {
			t.Errorf("%+v %s: got %q %q %v, want %q %q", tc.target, tc.name, got, note, ok, tc.want, tc.note)
		}
	}
	if _, _, ok := m.Lookup(Target{}, "nope"); ok {
		t.Error("unknown name found")
	}
}

func TestParseMapRejectsUnknownKey(t *testing.T) {
	if _, err := ParseMap([]byte(`{"famliy": {}}`)); err == nil || !strings.Contains(err.Error(), `"famliy"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestResolveOptions(t *testing.T) {
	el := Element{Name: "demo", FS: mapfs(map[string]string{
		"pkg-map": bootloaderMap,
		"package-installs.yaml": `
grub-pc:
early:
  phase: pre-install.d
gone:
  uninstall: true
armonly:
  arch: arm64, armhf
notarm:
  not-arch: arm64
py2:
  dib_python_version: 2
py3:
  dib_python_version: 3
srconly:
  installtype: source
pkgonly:
  installtype: package
kernel:
  - arch: arm64
    when: KERNEL = arm
  - not-arch: arm64
    when:
      - KERNEL = generic
      - DIB_RELEASE != old
tools:
  build-only: true
dkms_package:
`})}
	env := map[string]string{"KERNEL": "generic", "DIB_RELEASE": "new"}
	res, ds := Resolve([]Element{el}, Target{
		Distro: "centos", Family: "redhat", Release: "8", Arch: "amd64",
		InstallType: func(string) string { return "source" },
		Lookup:      func(k string) (string, bool) { v, ok := env[k]; return v, ok },
	})
	if len(ds) != 0 {
		t.Fatal(ds)
	}
	var got []string
	for _, p := range res.Packages {
		verb := "install"
		if p.Uninstall {
			verb = "uninstall"
		}
		got = append(got, p.Phase+" "+verb+" "+p.Name+" -> "+strings.Join(p.Mapped, ",")+" ("+p.Note+")")
	}
	want := []string{
		"pre-install.d install early -> early (not in element demo's pkg-map)",
		"install.d install dkms_package ->  (redhat family, from element demo's pkg-map)",
		"install.d install grub-pc -> grub2-tools,grub2 (redhat family, from element demo's pkg-map)",
		"install.d install kernel -> kernel (not in element demo's pkg-map)",
		"install.d install notarm -> notarm (not in element demo's pkg-map)",
		"install.d install py3 -> py3 (not in element demo's pkg-map)",
		"install.d install srconly -> srconly (not in element demo's pkg-map)",
		"install.d install tools -> tools (not in element demo's pkg-map)",
		"install.d uninstall gone -> gone (not in element demo's pkg-map)",
		"post-install.d uninstall tools -> tools (not in element demo's pkg-map; build-only)",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !reflect.DeepEqual(res.Maps["demo"]["grub-pc"], []string{"grub2-tools", "grub2"}) {
		t.Errorf("maps = %v", res.Maps)
	}
}

func TestResolveErrorsNameElement(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"bad option": {"package-installs.yaml": "foo:\n  phse: install.d\n"},
		"bad phase":  {"package-installs.yaml": "foo:\n  phase: instal.d\n"},
		"bad when":   {"package-installs.yaml": "foo:\n  when: JUSTAWORD\n"},
		"bad map":    {"pkg-map": "{not json"},
		"deep":       {"package-installs.yaml": "foo: " + strings.Repeat("[", 100000)},
		"deep map":   {"pkg-map": strings.Repeat(`{"a":`, 100000)},
		"many keys":  {"package-installs.yaml": strings.Repeat("a: b\n", 6000)},
	} {
		_, ds := Resolve([]Element{{Name: "broken", FS: mapfs(files)}}, Target{Distro: "debian", Family: "debian"})
		if len(ds) != 1 || ds[0].Subject != "broken" {
			t.Errorf("%s: diagnostics %v", name, ds)
		}
	}
}

// TestSkeletonMaps resolves every pkg-map and package-installs of upstream
// DIB's element graph for a few distributions: none may fail to parse.
func TestSkeletonMaps(t *testing.T) {
	dir := fixture.SkeletonDir(t)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var els []Element
	for _, e := range ents {
		els = append(els, Element{Name: e.Name(), FS: os.DirFS(filepath.Join(dir, e.Name()))})
	}
	for _, tg := range []Target{
		{Distro: "debian", Family: "debian", Release: "bookworm", Arch: "amd64"},
		{Distro: "ubuntu", Family: "debian", Release: "noble", Arch: "arm64"},
		{Distro: "centos", Family: "redhat", Release: "9", Arch: "amd64"},
	} {
		res, ds := Resolve(els, tg)
		if len(ds) != 0 {
			t.Fatalf("%s: %v", tg.Distro, ds)
		}
		if len(res.Packages) == 0 {
			t.Fatalf("%s: no packages", tg.Distro)
		}
		if tg.Family == "redhat" {
			if got := res.Maps["bootloader"]["grub-pc"]; !reflect.DeepEqual(got, []string{"grub2-tools", "grub2"}) {
				t.Errorf("bootloader grub-pc on centos = %v", got)
			}
		}
	}
}

// TestLimitsNamePosition: an element file over dib's input limits is
// refused before it is parsed, with the line and column.
func TestLimitsNamePosition(t *testing.T) {
	_, ds := Resolve([]Element{{Name: "deep", FS: mapfs(map[string]string{"package-installs.yaml": "foo: " + strings.Repeat("[", 100000)})}}, Target{Distro: "debian", Family: "debian"})
	want := "error: deep: package-installs.yaml: line 1, column 69: the values are nested more than 64 levels deep (dib's files need far fewer levels; look for unclosed brackets or runaway indentation)"
	if len(ds) != 1 || ds[0].Error() != want {
		t.Errorf("got %v\nwant %s", ds, want)
	}
}
