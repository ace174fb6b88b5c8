package preflight

import (
	"errors"
	"testing"

	"github.com/dibuild/dib/compiler/plan"
)

func TestCheck(t *testing.T) {
	p := &plan.Plan{HostTools: []plan.HostTool{
		{Program: "mkfs.ext4", Package: "e2fsprogs"},
		{Program: "qemu-img", Package: "qemu-utils"},
		{Program: "mmdebstrap", Package: "mmdebstrap"},
	}}
	have := map[string]bool{"mkfs.ext4": true}
	missing := Check(p, func(s string) (string, error) {
		if have[s] {
			return "/usr/bin/" + s, nil
		}
		return "", errors.New("not found")
	})
	if len(missing) != 2 || !*p.HostTools[0].Found || *p.HostTools[1].Found {
		t.Fatalf("missing = %v", missing)
	}
	want := "missing host tools: qemu-img, mmdebstrap\n  hint: apt-get install mmdebstrap qemu-utils"
	if got := (&Error{missing}).Error(); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestPackages(t *testing.T) {
	got := Packages([]plan.HostTool{{Program: "mcopy", Package: "mtools"}, {Program: "mmd", Package: "mtools"}, {Program: "x", Package: "?"}, {Program: "qemu-img", Package: "qemu-utils"}})
	if len(got) != 2 || got[0] != "mtools" || got[1] != "qemu-utils" {
		t.Errorf("Packages = %v", got)
	}
}
