package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/plan"
)

const envdTrixie = "testdata/envd-trixie/dib.yaml"

// TestEnvironmentDReleasePlan: `dib plan` of a Dibfile whose release comes
// only from a test element's environment.d says trixie, with the file as
// the origin, and bootstraps trixie.
func TestEnvironmentDReleasePlan(t *testing.T) {
	code, out, errs := runDib(t, "plan", "--no-color", envdTrixie)
	if code != 0 {
		t.Fatalf("plan: %d %s", code, errs)
	}
	for _, want := range []string{
		"release trixie, arch amd64",
		"element set-release-trixie, environment.d/10-set-distro.bash",
		"mmdebstrap trixie from http://deb.debian.org/debian (main)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "DIB_RELEASE=") && !strings.Contains(line, "DIB_RELEASE=trixie") {
			t.Errorf("plan shows %s", line)
		}
	}
}

// TestEnvironmentDReleaseEndToEnd builds the trixie test Dibfile to a
// tarball: the tree is Debian 13.
func TestEnvironmentDReleaseEndToEnd(t *testing.T) {
	requireE2E(t)
	out := t.TempDir()
	code, stdout, stderr := runDib(t, "plan", "--json", envdTrixie)
	if code != 0 {
		t.Fatalf("plan: %d %s", code, stderr)
	}
	p, err := plan.Read(strings.NewReader(stdout))
	if err != nil {
		t.Fatal(err)
	}
	if p.Image.Release != "trixie" {
		t.Fatalf("plan release %q", p.Image.Release)
	}
	code, _, stderr = runDib(t, "apply", "--install-host-tools", "--no-color", "-O", out, envdTrixie)
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, stderr)
	}
	tree := filepath.Join(out, "tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	sh(t, "tar", "-xf", filepath.Join(out, "envd-trixie.tar"), "-C", tree)
	v, _ := os.ReadFile(filepath.Join(tree, "etc/debian_version"))
	if !strings.HasPrefix(string(v), "13.") {
		t.Errorf("/etc/debian_version %q, want 13.x", v)
	}
	// DIB's debian-minimal: one sources.list.d/NAME.list per DIB_APT_SOURCES_CONF line.
	src, _ := os.ReadFile(filepath.Join(tree, "etc/apt/sources.list.d/default.list"))
	if !strings.Contains(string(src), " trixie ") || strings.Contains(string(src), "bookworm") {
		t.Errorf("sources.list.d/default.list:\n%s", src)
	}
}

// TestConvertedDibYAMLPlansItsRelease: a DIB YAML (as nodepool writes
// them: no release or mirror key, DIB's variables in the environment)
// converted by dib convert plans the release, mirror and checksums the
// variables say.
func TestConvertedDibYAMLPlansItsRelease(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "focal.yaml")
	if err := os.WriteFile(in, []byte(`- imagename: ubuntu-focal
  elements: [ubuntu-minimal, vm]
  environment:
    DIB_RELEASE: focal
    DIB_DISTRIBUTION_MIRROR: http://mirror.example/ubuntu
    DIB_CHECKSUM: "1"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, dibfile, errs := runDib(t, "convert", in)
	if code != 0 {
		t.Fatalf("convert: %d %s", code, errs)
	}
	conv := filepath.Join(dir, "Dibfile.yaml")
	if err := os.WriteFile(conv, []byte(dibfile), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runDib(t, "plan", "--json", conv)
	if code != 0 {
		t.Fatalf("plan: %d %s", code, errs)
	}
	p, err := plan.Read(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	var b *plan.Bootstrap
	for _, s := range p.Steps {
		if s.Bootstrap != nil {
			b = s.Bootstrap
		}
	}
	if p.Image.Release != "focal" || b == nil || b.Suite != "focal" || b.Mirror != "http://mirror.example/ubuntu" {
		t.Errorf("release %q bootstrap %+v", p.Image.Release, b)
	}
	if len(p.Outputs) != 1 || strings.Join(p.Outputs[0].Checksums, " ") != "md5 sha256" {
		t.Errorf("outputs %+v", p.Outputs)
	}
}
