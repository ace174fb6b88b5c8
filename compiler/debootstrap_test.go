package compiler

import (
	"reflect"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/elements"
)

// TestDebootstrapExtraArgs: DIB_DEBOOTSTRAP_EXTRA_ARGS and the keyring
// variables act on the mmdebstrap bootstrap as they act on DIB's
// debootstrap; what has no mmdebstrap meaning is a warning in the plan.
func TestDebootstrapExtraArgs(t *testing.T) {
	src := `name: d
distro: debian-minimal
elements: [vm]
outputs: [tar]
env:
  DIB_DEBOOTSTRAP_EXTRA_ARGS: "--include=less,file --no-check-gpg --merged-usr --exclude=nano --verbose --arch arm64 --foreign"
  DIB_DEBIAN_KEYRING: /srv/debian.gpg
`
	plans, ds := compileSrc(t, "Dibfile", src, elements.FS(), nil)
	if ds.HasErrors() || len(plans) != 1 {
		t.Fatalf("compile: %v", ds)
	}
	var boot *plan.Bootstrap
	for _, s := range plans[0].Steps {
		if s.Bootstrap != nil {
			boot = s.Bootstrap
		}
	}
	// As DIB, whose debootstrap (not mmdebstrap) then runs: no apt,tzdata.
	if want := []string{"less", "file"}; !reflect.DeepEqual(boot.Include, want) {
		t.Errorf("include %q, want %q", boot.Include, want)
	}
	if want := []string{"/srv/debian.gpg"}; !reflect.DeepEqual(boot.Keyrings, want) {
		t.Errorf("keyrings %q, want %q", boot.Keyrings, want)
	}
	want := []string{`--aptopt=Acquire::AllowInsecureRepositories "true"`, `--aptopt=APT::Get::AllowUnauthenticated "true"`, "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr"}
	if !reflect.DeepEqual(boot.ExtraArgs, want) {
		t.Errorf("extra args %q, want %q", boot.ExtraArgs, want)
	}
	var warned []string
	for _, d := range plans[0].Diagnostics {
		if d.Subject == "DIB_DEBOOTSTRAP_EXTRA_ARGS" {
			warned = append(warned, strings.Fields(strings.TrimPrefix(d.Message, "DIB_DEBOOTSTRAP_EXTRA_ARGS "))[0])
		}
	}
	if want := []string{"--exclude=nano:", "--verbose:", "--arch:", "--foreign:"}; !reflect.DeepEqual(warned, want) {
		t.Errorf("warnings for %q, want %q (%v)", warned, want, plans[0].Diagnostics)
	}
}
