package compiler

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dibuild/dib/elements"
	"github.com/dibuild/dib/spec"
)

// FuzzElementTree compiles a Dibfile using an element whose files come
// from the fuzzer: element-deps, package-installs.yaml, pkg-map and
// block-device-default.yaml. Compile must never panic, every error must
// name a position or an element, and a plan must come back exactly when
// there is no error.
//
//	nice go test -run '^$' -fuzz FuzzElementTree -fuzztime 10m -parallel 1 ./compiler/
func FuzzElementTree(f *testing.F) {
	f.Add("", "vim:\n", `{"family": {"debian": {"vim": "vim-nox"}}}`, "")
	f.Add("vm\n", "a:\n  arch: {a: b}\n", "{", "- local_loop: {name: image0}\n")
	f.Add("block-device-efi\n", "b:\n  phase: install.d\n  when: DIB_X = 1\n", "", "- mkfs: {name: ../x, base: image0, type: zfs}\n")
	f.Add("", "foo: "+strings.Repeat("[", 200), strings.Repeat(`{"a":`, 200), strings.Repeat("- ", 200))
	f.Add("", "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n", "", "- mkfs: &m {name: x}\n- mount: *m\n")
	if src, err := os.ReadFile("../elements/block-device-efi/block-device-default.yaml"); err == nil {
		f.Add("", "", "", string(src))
	}
	dibfile := "name: fz\ndistro: debian-minimal\nelements: [fz]\noutputs: [raw]\n"
	file, ds := spec.Load("Dibfile", []byte(dibfile), nil)
	if ds.HasErrors() {
		f.Fatal(ds)
	}
	builtin := elements.FS()
	f.Fuzz(func(t *testing.T, deps, installs, pkgMap, blockDevice string) {
		dir := t.TempDir()
		el := filepath.Join(dir, "fz")
		if err := os.Mkdir(el, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, content := range map[string]string{
			"element-deps": deps, "package-installs.yaml": installs, "pkg-map": pkgMap, "block-device-default.yaml": blockDevice,
		} {
			if content == "" {
				continue
			}
			if err := os.WriteFile(filepath.Join(el, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		plans, ds := Compile(file, Options{Builtin: builtin, DibVersion: "fuzz", ExtraElementsPath: []string{dir}})
		if ds.HasErrors() == (len(plans) > 0) {
			t.Fatalf("errors %v but %d plans", ds.HasErrors(), len(plans))
		}
		for _, d := range ds {
			if strings.Contains(d.Message, "internal error") || strings.Contains(d.Message, "panic") {
				t.Fatalf("internal error: %v", d)
			}
			if d.Severity.String() == "error" && d.File == "" && d.Subject == "" {
				t.Fatalf("error without a position or an element: %v", d)
			}
		}
	})
}
