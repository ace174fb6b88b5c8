package starter

import (
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler"
	"github.com/dibuild/dib/elements"
	"github.com/dibuild/dib/spec"
)

// TestStarterDibfilesValidate: every distribution dib ships an element for
// and every layout give a Dibfile that loads and compiles without errors.
func TestStarterDibfilesValidate(t *testing.T) {
	for _, distro := range []string{"debian-minimal", "ubuntu-minimal", "centos-minimal"} {
		for _, layout := range Layouts() {
			t.Run(distro+"/"+layout, func(t *testing.T) {
				out, err := Dibfile(Options{Distro: distro, Layout: layout, SchemaURL: "schema/dibfile.schema.json"})
				if err != nil {
					t.Fatal(err)
				}
				f, ds := spec.Load("Dibfile", out, nil)
				if ds.HasErrors() {
					t.Fatalf("%v\n%s", ds, out)
				}
				_, cds := compiler.Compile(f, compiler.Options{Builtin: elements.FS()})
				if cds.HasErrors() {
					t.Fatalf("%v\n%s", cds, out)
				}
				if !strings.Contains(string(out), "distro: "+distro+"\n") {
					t.Errorf("no distro line:\n%s", out)
				}
			})
		}
	}
}

func TestStarterRefuses(t *testing.T) {
	for _, o := range []Options{
		{Layout: "lvm"},
		{Distro: "debain-minimal"},
		{Release: "bookwrom"},
		{Name: "a b"},
	} {
		if _, err := Dibfile(o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	out, err := Dibfile(Options{Distro: "ubuntu-minimal", Release: "jammy", Name: "u"})
	if err != nil || !strings.Contains(string(out), "release: jammy\n") || !strings.Contains(string(out), "name: u\n") {
		t.Errorf("%v\n%s", err, out)
	}
}
