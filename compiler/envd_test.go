package compiler

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/elements"
	"github.com/dibuild/dib/internal/fixture"
)

func envOf(p *plan.Plan, name string) (plan.EnvVar, bool) {
	for _, v := range p.Env {
		if v.Name == name {
			return v, true
		}
	}
	return plan.EnvVar{}, false
}

func bootstrapOf(t *testing.T, p *plan.Plan) *plan.Bootstrap {
	t.Helper()
	for _, s := range p.Steps {
		if s.Bootstrap != nil {
			return s.Bootstrap
		}
	}
	t.Fatal("no bootstrap step")
	return nil
}

// TestEnvironmentDRelease: an element's environment.d that sets
// DIB_RELEASE decides the release the plan bootstraps, and the plan names
// the file as the origin.
func TestEnvironmentDRelease(t *testing.T) {
	p := mustCompile(t, "../cmd/dib/testdata/envd-trixie/dib.yaml", mustRead(t, "../cmd/dib/testdata/envd-trixie/dib.yaml"), elements.FS(), nil)
	if p.Image.Release != "trixie" {
		t.Errorf("release %q, want trixie", p.Image.Release)
	}
	v, _ := envOf(p, "DIB_RELEASE")
	want := plan.Origin{Kind: plan.OriginEnvironmentD, Element: "set-release-trixie", File: "environment.d/10-set-distro.bash"}
	if v.Value != "trixie" || v.Origin != want || v.Overrides != nil {
		t.Errorf("DIB_RELEASE %+v", v)
	}
	if s := v.Origin.String(); s != "element set-release-trixie, environment.d/10-set-distro.bash" {
		t.Errorf("origin shown as %q", s)
	}
	b := bootstrapOf(t, p)
	if b.Suite != "trixie" || !strings.Contains(strings.Join(b.Sources, "\n"), "trixie-security") {
		t.Errorf("bootstrap %+v", b)
	}
	// Values derived from the release see the decided release, as the
	// phases will (the runtime exports DIB_RELEASE).
	if v, _ := envOf(p, "DIB_DEBIAN_SECURITY_SUBPATH"); v.Value != "trixie-security" || v.Origin.Element != "debian-minimal" {
		t.Errorf("DIB_DEBIAN_SECURITY_SUBPATH %+v", v)
	}
	// debian-minimal's own defaults, each with its file.
	v, _ = envOf(p, "DIB_DEBIAN_COMPONENTS")
	if v.Value != "main" || v.Origin.Element != "debian-minimal" {
		t.Errorf("DIB_DEBIAN_COMPONENTS %+v", v)
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestEnvironmentDUsesDibfileEnv: the files see the Dibfile's env and
// typed keys; a ${VAR:-default} keeps the Dibfile's value; a file that
// replaces a Dibfile value records what it replaced; every later decision
// (bootstrap components and mirror, package-installs conditions) uses the
// result.
func TestEnvironmentDUsesDibfileEnv(t *testing.T) {
	dir := t.TempDir()
	writeElement(t, dir, "envtest", map[string]string{
		"element-deps": "package-installs\n",
		"environment.d/20-envtest": `export ENVTEST_SEEN="$DIB_RELEASE/$ARCH/$IMAGE_NAME/${DIB_DEV_USER_USERNAME:-none}"
export DIB_DEBIAN_COMPONENTS=${DIB_DEBIAN_COMPONENTS},contrib
export DIB_WANT_EXTRA=${DIB_WANT_EXTRA:-yes}
export FORCED=element
`,
		"package-installs.yaml": "extra-pkg:\n  when: DIB_WANT_EXTRA = yes\nother-pkg:\n  when: DIB_WANT_EXTRA = no\n",
	})
	src := `name: demo
distro: debian-minimal
arch: amd64
elements: [envtest]
env:
  DIB_RELEASE: bullseye
  DIB_DISTRIBUTION_MIRROR: http://mirror.example/debian
  FORCED: dibfile
outputs: [tar]
`
	p := mustCompile(t, "demo.yaml", src, elements.FS(), nil, dir)
	if v, _ := envOf(p, "ENVTEST_SEEN"); v.Value != "bullseye/amd64/demo/none" {
		t.Errorf("ENVTEST_SEEN=%q", v.Value)
	}
	b := bootstrapOf(t, p)
	if b.Suite != "bullseye" || b.Mirror != "http://mirror.example/debian" || strings.Join(b.Components, ",") != "main,contrib" {
		t.Errorf("bootstrap suite %q mirror %q components %v", b.Suite, b.Mirror, b.Components)
	}
	if p.Image.Release != "bullseye" {
		t.Errorf("release %q", p.Image.Release)
	}
	v, _ := envOf(p, "DIB_RELEASE")
	if v.Origin.Kind != "dibfile" || v.Origin.Line != 6 {
		t.Errorf("DIB_RELEASE origin %+v (the Dibfile's env entry, kept by ${DIB_RELEASE:-…})", v.Origin)
	}
	v, _ = envOf(p, "FORCED")
	if v.Value != "element" || v.Overrides == nil || v.Overrides.Value != "dibfile" || v.Overrides.Origin.Line != 8 {
		t.Errorf("FORCED %+v", v)
	}
	var pk []string
	for _, s := range p.Steps {
		if s.Phase != nil {
			for _, x := range s.Phase.Packages {
				pk = append(pk, x.Name)
			}
		}
	}
	got := strings.Join(pk, " ")
	if !strings.Contains(got, "extra-pkg") || strings.Contains(got, "other-pkg") {
		t.Errorf("packages %s: the when: condition did not see environment.d's DIB_WANT_EXTRA", got)
	}
}

// TestEnvironmentDFailure: a file that does not source stops the compile
// with an error at the element's file and line.
func TestEnvironmentDFailure(t *testing.T) {
	dir := t.TempDir()
	writeElement(t, dir, "broken", map[string]string{
		"environment.d/30-broken": "export A=1\n\nexport B=$UNSET_THING\n",
	})
	_, ds := compileSrc(t, "demo.yaml", "name: demo\ndistro: debian-minimal\narch: amd64\nelements: [broken]\noutputs: [tar]\n", elements.FS(), nil, dir)
	if !ds.HasErrors() {
		t.Fatal("no error")
	}
	d := ds[0]
	wantFile := filepath.Join(dir, "broken", "environment.d", "30-broken")
	if d.File != wantFile || d.Line != 3 || !strings.Contains(d.Message, "environment.d/30-broken of element broken") ||
		!strings.Contains(d.Message, "UNSET_THING: unbound variable") {
		t.Errorf("diagnostic %s:%d %q", d.File, d.Line, d.Message)
	}
}

// TestEnvironmentDSecrets: a secret reaches the files, and a value derived
// from it is redacted in the plan.
func TestEnvironmentDSecrets(t *testing.T) {
	dir := t.TempDir()
	writeElement(t, dir, "usespw", map[string]string{
		"environment.d/30-pw": "export DERIVED=\"user:$MY_TOKEN\"\nexport PLAIN=${MY_TOKEN:+set}\n",
	})
	src := "name: demo\ndistro: debian-minimal\narch: amd64\nelements: [usespw]\nenv:\n  MY_TOKEN: {secret: true, value: s3cr3t-value}\noutputs: [tar]\n"
	p := mustCompile(t, "demo.yaml", src, elements.FS(), nil, dir)
	if v, _ := envOf(p, "DERIVED"); !v.Secret || v.Value != plan.Redacted {
		t.Errorf("DERIVED %+v", v)
	}
	if v, _ := envOf(p, "PLAIN"); v.Value != "set" {
		t.Errorf("PLAIN %+v", v)
	}
	if strings.Contains(string(planJSON(t, p)), "s3cr3t-value") {
		t.Error("the secret is in the plan")
	}
}

// schemaArches is the arch enum of the Dibfile schema (the source of truth
// of the names dib accepts).
func schemaArches(t *testing.T) []string {
	arches := fixture.SchemaImageKeys(t)["arch"]
	if len(arches) < 5 || !slices.Contains(arches, "i386") {
		t.Fatalf("schema arch enum %v", arches)
	}
	return arches
}

// TestEveryArchPlans: every architecture name dib accepts validates and
// plans (DIB passes ARCH through; i386 is Debian's 32-bit x86).
func TestEveryArchPlans(t *testing.T) {
	for _, arch := range schemaArches(t) {
		p := mustCompile(t, "Dibfile", "name: a\ndistro: debian-minimal\narch: "+arch+"\nelements: [vm]\noutputs: [qcow2]\n", elements.FS(), nil)
		if p.Image.Arch != arch || bootstrapOf(t, p).Arch != arch {
			t.Errorf("arch %s: plan %q, bootstrap %q", arch, p.Image.Arch, bootstrapOf(t, p).Arch)
		}
	}
}

// TestContainerOSElements: DIB's container OS elements listed in elements:
// plan as the operating system (not as the containerfile element they use
// to provide operating-system), like the same element under distro:.
func TestContainerOSElements(t *testing.T) {
	for _, c := range []struct{ element, name, release string }{
		{"rocky-container", "rocky", "9"},
		{"almalinux-container", "almalinux", "9"},
		{"fedora-container", "fedora", ""},
	} {
		for _, src := range []string{
			"name: c\nelements: [" + c.element + ", vm]\noutputs: [qcow2]\n",
			"name: c\ndistro: " + c.element + "\nelements: [vm]\noutputs: [qcow2]\n",
		} {
			p := mustCompile(t, "Dibfile", src, skeleton(t), nil)
			v, _ := envOf(p, "DISTRO_NAME")
			if p.Image.Distro != c.element || p.Image.Family != "redhat" || p.Image.Release != c.release || v.Value != c.name {
				t.Errorf("%q: distro %q family %q release %q DISTRO_NAME %q", src, p.Image.Distro, p.Image.Family, p.Image.Release, v.Value)
			}
		}
	}
}

// TestDibVariablesInEnvAreObeyed: DIB's variables given in env: mean what
// they mean to DIB, as a DIB YAML or nodepool configuration sets them.
func TestDibVariablesInEnvAreObeyed(t *testing.T) {
	src := `name: u
elements: [ubuntu-minimal, vm]
env:
  DIB_RELEASE: focal
  DIB_DISTRIBUTION_MIRROR: http://mirror.example/ubuntu
  DIB_DEBIAN_COMPONENTS: main,universe,restricted
  DIB_CHECKSUM: "1"
  DIB_IMAGE_SIZE: "3"
  FS_TYPE: xfs
outputs: [qcow2]
`
	p := mustCompile(t, "Dibfile", src, elements.FS(), nil)
	b := bootstrapOf(t, p)
	if p.Image.Release != "focal" || b.Suite != "focal" || b.Mirror != "http://mirror.example/ubuntu" || strings.Join(b.Components, " ") != "main universe restricted" {
		t.Errorf("release %q, bootstrap %s from %s %v", p.Image.Release, b.Suite, b.Mirror, b.Components)
	}
	if len(p.Outputs) != 1 || strings.Join(p.Outputs[0].Checksums, ",") != "md5,sha256" {
		t.Errorf("outputs %+v", p.Outputs)
	}
	for _, s := range p.Steps {
		if s.ImageSize != nil && s.ImageSize.Bytes != 3<<30 {
			t.Errorf("image size %d", s.ImageSize.Bytes)
		}
		if s.Partition != nil && s.Partition.Params.RootFSType != "xfs" {
			t.Errorf("root filesystem %q", s.Partition.Params.RootFSType)
		}
	}
	// An element's environment.d that sets DIB_CHECKSUM changes nothing:
	// disk-image-create reads it before the files run. dib says so.
	dir := t.TempDir()
	writeElement(t, dir, "sums", map[string]string{"environment.d/10-sums": "export DIB_CHECKSUM=${DIB_CHECKSUM:-sha256}\n"})
	p = mustCompile(t, "Dibfile", "name: s\ndistro: debian-minimal\nelements: [sums]\noutputs: [tar]\n", elements.FS(), nil, dir)
	if len(p.Outputs[0].Checksums) != 0 {
		t.Errorf("checksums %v", p.Outputs[0].Checksums)
	}
	if !hasDiag(p, "element sums, environment.d/10-sums sets DIB_CHECKSUM, which DIB reads before environment.d runs") {
		t.Errorf("no warning: %v", p.Diagnostics)
	}
}

func hasDiag(p *plan.Plan, sub string) bool {
	for _, d := range p.Diagnostics {
		if strings.Contains(d.Message, sub) {
			return true
		}
	}
	return false
}

// TestEnvironmentDInstallTypes: DIB_INSTALLTYPE_<prefix> from the Dibfile's
// env or from an element's environment.d chooses the install scripts, as
// DIB's install-types element reads it after environment.d; a file that
// replaces a Dibfile value is a warning at the Dibfile's value.
func TestEnvironmentDInstallTypes(t *testing.T) {
	dir := t.TempDir()
	writeElement(t, dir, "thing", map[string]string{
		"element-deps":                         "install-types\n",
		"install.d/thing-source-install/10-a":  "#!/bin/sh\n# source\n",
		"install.d/thing-package-install/10-a": "#!/bin/sh\n# package\n",
	})
	writeElement(t, dir, "pick", map[string]string{
		"environment.d/10-pick": "export DIB_INSTALLTYPE_thing=package\nexport MY_VAR=element\n",
	})
	run := func(p *plan.Plan) string {
		for _, s := range p.Steps {
			if s.Phase != nil && s.Phase.Name == "install.d" {
				for _, sc := range s.Phase.Scripts {
					if sc.Name != "10-a" {
						continue
					}
					for _, f := range p.Files {
						if f.SHA256 == sc.SHA256 && strings.Contains(f.Path, "-install/") {
							return f.Path
						}
					}
				}
			}
		}
		return ""
	}
	base := "name: s\ndistro: debian-minimal\noutputs: [tar]\n"
	if got := run(mustCompile(t, "Dibfile", base+"elements: [thing]\n", elements.FS(), nil, dir)); !strings.Contains(got, "thing-source-install") {
		t.Errorf("default: %q", got)
	}
	if got := run(mustCompile(t, "Dibfile", base+"elements: [thing]\nenv:\n  DIB_INSTALLTYPE_thing: package\n", elements.FS(), nil, dir)); !strings.Contains(got, "thing-package-install") {
		t.Errorf("env: %q", got)
	}
	p := mustCompile(t, "Dibfile", base+"elements: [thing, pick]\nenv:\n  MY_VAR: dibfile\n", elements.FS(), nil, dir)
	if got := run(p); !strings.Contains(got, "thing-package-install") {
		t.Errorf("environment.d: %q", got)
	}
	if !hasDiag(p, `element pick, environment.d/10-pick replaces MY_VAR="dibfile" with "element"`) {
		t.Errorf("no warning: %v", p.Diagnostics)
	}
}

// TestBlockDeviceConfigFromEnv: DIB_BLOCK_DEVICE_CONFIG in env: (the YAML,
// or file://PATH) is the disk layout, over the elements' configs, as DIB.
func TestBlockDeviceConfigFromEnv(t *testing.T) {
	cfg := `- local_loop:
    name: image0
- partitioning:
    base: image0
    label: gpt
    partitions:
      - name: root
        type: "8300"
        size: 100%
- mkfs:
    name: mkfs_root
    base: root
    type: ext4
    mount:
      mount_point: /
      fstab:
        options: defaults
`
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "layout.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	indented := "    " + strings.ReplaceAll(strings.TrimSpace(cfg), "\n", "\n    ")
	for name, value := range map[string]string{
		"inline": "|\n" + indented,
		"file":   "file://layout.yaml",
	} {
		src := "name: b\ndistro: debian-minimal\nelements: [vm]\noutputs: [raw]\nenv:\n  DIB_BLOCK_DEVICE_CONFIG: " + value + "\n"
		p := mustCompile(t, filepath.Join(dir, "Dibfile"), src, elements.FS(), nil)
		var part *plan.Partition
		for _, s := range p.Steps {
			if s.Partition != nil {
				part = s.Partition
			}
		}
		if part == nil || part.Source != "DIB_BLOCK_DEVICE_CONFIG (env)" || len(part.Layout.PartitionTables) != 1 || part.Layout.PartitionTables[0].Label != "gpt" {
			t.Errorf("%s: partition step %+v", name, part)
		}
	}
	_, ds := compileSrc(t, filepath.Join(dir, "Dibfile"), "name: b\ndistro: debian-minimal\nelements: [vm]\noutputs: [raw]\nenv:\n  DIB_BLOCK_DEVICE_CONFIG: file://missing.yaml\n", elements.FS(), nil)
	if !ds.HasErrors() || ds[0].Line != 6 || !strings.Contains(ds[0].Message, "DIB_BLOCK_DEVICE_CONFIG") {
		t.Errorf("missing file: %v", ds)
	}
}

// TestMainScriptVarsIgnoreEnvironmentD: DIB_JOURNAL_SIZE set by an element's
// environment.d changes nothing (disk-image-create reads it first); the
// Dibfile's env sets it.
func TestMainScriptVarsIgnoreEnvironmentD(t *testing.T) {
	dir := t.TempDir()
	writeElement(t, dir, "journal", map[string]string{"environment.d/10-j": "export DIB_JOURNAL_SIZE=256\n"})
	journal := func(p *plan.Plan) string {
		for _, s := range p.Steps {
			if s.Partition != nil {
				return s.Partition.Params.RootFSOpts
			}
		}
		return ""
	}
	p := mustCompile(t, "Dibfile", "name: j\ndistro: debian-minimal\nelements: [vm, journal]\noutputs: [raw]\n", elements.FS(), nil, dir)
	if o := journal(p); strings.Contains(o, "256") || !hasDiag(p, "sets DIB_JOURNAL_SIZE, which DIB reads before environment.d runs") {
		t.Errorf("environment.d: root fs options %q, diagnostics %v", o, p.Diagnostics)
	}
	p = mustCompile(t, "Dibfile", "name: j\ndistro: debian-minimal\nelements: [vm]\noutputs: [raw]\nenv:\n  DIB_JOURNAL_SIZE: \"256\"\n", elements.FS(), nil)
	if o := journal(p); !strings.Contains(o, "size=256") {
		t.Errorf("env: root fs options %q", o)
	}
}

// TestIdentityVariablesMarked: the variables naming the image and its
// outputs are marked identity in the plan, with what environment.d files
// derive from them (found by running the files with them changed) and
// nothing else; when that run fails, no variable is marked.
func TestIdentityVariablesMarked(t *testing.T) {
	dir := t.TempDir()
	writeElement(t, dir, "derives", map[string]string{
		"environment.d/20-derives": "export SAVE_AT=${IMAGE_NAME}.out\nexport FIXED=/etc/x\nexport TYPES_SEEN=\"$IMAGE_TYPES/$DIB_RELEASE\"\n",
	})
	writeElement(t, dir, "picky", map[string]string{
		"environment.d/20-picky": "case \"$IMAGE_NAME\" in demo) ;; *) return 1 ;; esac\nexport PICKED=$IMAGE_NAME\n",
	})
	marked := func(p *plan.Plan) []string {
		var out []string
		for _, v := range p.Env {
			if v.Identity {
				out = append(out, v.Name)
			}
		}
		return out
	}
	src := "name: demo\ndistro: debian-minimal\narch: amd64\nelements: [ELEMENT]\nenv:\n  OTHER: x\noutputs: [tar]\n"
	p := mustCompile(t, "demo.yaml", strings.Replace(src, "ELEMENT", "derives", 1), elements.FS(), nil, dir)
	got := marked(p)
	for _, want := range []string{"IMAGE_NAME", "IMAGE_TYPES", "SAVE_AT", "TYPES_SEEN"} {
		if !slices.Contains(got, want) {
			t.Errorf("%s is not marked identity (marked: %v)", want, got)
		}
	}
	for _, not := range []string{"FIXED", "OTHER", "DIB_RELEASE", "ARCH"} {
		if slices.Contains(got, not) {
			t.Errorf("%s is marked identity (marked: %v)", not, got)
		}
	}
	p = mustCompile(t, "demo.yaml", strings.Replace(src, "ELEMENT", "picky", 1), elements.FS(), nil, dir)
	if v, _ := envOf(p, "PICKED"); v.Value != "demo" {
		t.Fatalf("PICKED %+v", v)
	}
	if got := marked(p); len(got) != 0 {
		t.Errorf("marked %v though the files refuse another image name", got)
	}
}
