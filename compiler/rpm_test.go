package compiler

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/plan/render"
	"github.com/dibuild/dib/elements"
	"github.com/dibuild/dib/spec"
)

// TestRPMExamplesPlan: every RPM-family example's plan shows its
// repositories, the dnf command lines and the Red Hat package names
// pkg-map gave; an example naming an element dib does not ship fails to
// plan with an error that says where that element comes from.
func TestRPMExamplesPlan(t *testing.T) {
	paths, _ := filepath.Glob("../examples/*.yaml")
	rpm := 0
	for _, path := range paths {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f, ds := spec.Load(path, src, func(string) (string, bool) { return "", false })
		if ds.HasErrors() {
			t.Fatal(ds)
		}
		if len(f.Images) == 0 || !strings.Contains(f.Images[0].Distro.Element, "centos") && !strings.Contains(f.Images[0].Distro.Element, "fedora") {
			continue
		}
		rpm++
		t.Run(filepath.Base(path), func(t *testing.T) {
			plans, ds := Compile(f, Options{Builtin: elements.FS()})
			if ds.HasErrors() {
				var msg string
				for _, d := range ds {
					msg += d.Message + "\n  hint: " + d.Hint + "\n"
				}
				if !strings.Contains(msg, "Element 'ironic-python-agent-ramdisk' not found") || !strings.Contains(msg, "dib does not ship ironic-python-agent-ramdisk: it is ironic-python-agent-builder's") {
					t.Fatalf("plan fails without saying which element dib does not ship:\n%s", msg)
				}
				return
			}
			var text bytes.Buffer
			if err := render.Text(&text, plans[0], render.Options{}); err != nil {
				t.Fatal(err)
			}
			out := text.String()
			for _, want := range []string{"dnf (yum-minimal) " + plans[0].Steps[0].Bootstrap.DNF.Distro, "repositories: ", "$ dnf download ", "$ rpm --root $TARGET_ROOT",
				"$ dnf -y --disableplugin=local --disableexcludes=all", "--installroot $TARGET_ROOT install dnf", "dib-grub-common → grub2-tools  (redhat family",
				"iscsi_package → iscsi-initiator-utils  (redhat family"} {
				if !strings.Contains(out, want) {
					t.Errorf("plan lacks %q", want)
				}
			}
		})
	}
	if rpm < 3 {
		t.Errorf("%d RPM-family examples, want the seeds' three and more", rpm)
	}
}
