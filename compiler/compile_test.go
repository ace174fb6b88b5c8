package compiler

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/compiler/plan/format"
	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/compiler/plan/render"
	"github.com/dibuild/dib/elements"
	"github.com/dibuild/dib/spec"
	"github.com/dibuild/dib/spec/diag"

	"github.com/dibuild/dib/internal/fixture"
)

// skeleton is upstream DIB's element graph with empty hooks (test data).
func skeleton(t testing.TB) fs.FS {
	return os.DirFS(fixture.SkeletonDir(t))
}

func compileSrc(t testing.TB, name, src string, builtin fs.FS, env map[string]string, extra ...string) ([]*plan.Plan, diag.Diagnostics) {
	t.Helper()
	f, ds := spec.Load(name, []byte(src), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if ds.HasErrors() {
		t.Fatalf("load: %v", ds)
	}
	return Compile(f, Options{Builtin: builtin, DibVersion: "test", ExtraElementsPath: extra})
}

func mustCompile(t testing.TB, name, src string, builtin fs.FS, env map[string]string, extra ...string) *plan.Plan {
	t.Helper()
	plans, ds := compileSrc(t, name, src, builtin, env, extra...)
	if ds.HasErrors() || len(plans) != 1 {
		t.Fatalf("compile: %v", ds)
	}
	return plans[0]
}

func planJSON(t testing.TB, p *plan.Plan) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := p.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

const vmDibfile = `name: demo
distro: debian-minimal
release: bookworm
arch: amd64
elements: [vm, devuser, growroot]
env:
  DIB_DEV_USER_USERNAME: devuser
  DIB_DEV_USER_PASSWORD:
    secret: true
    from-env: DEV_PASSWORD
  DIB_ROOT_PASS:
    secret: true
    value: InlineSecret-77
packages: [less]
block-device: efi
image-size: 4GiB
outputs: [qcow2, tar, raw]
checksum: [sha256]
`

// TestDeterminism: the same Dibfile gives byte-identical plan JSON across
// runs, GOMAXPROCS values and environment order.
func TestDeterminism(t *testing.T) {
	sk := skeleton(t)
	env := map[string]string{"DEV_PASSWORD": "pw", "A": "1", "B": "2"}
	want := planJSON(t, mustCompile(t, "Dibfile", vmDibfile, sk, env))
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range []int{1, 2, 8} {
		runtime.GOMAXPROCS(procs)
		for i := 0; i < 3; i++ {
			env2 := map[string]string{}
			for k, v := range env { // a new map: another iteration order
				env2[k] = v
			}
			if got := planJSON(t, mustCompile(t, "Dibfile", vmDibfile, sk, env2)); !bytes.Equal(got, want) {
				t.Fatalf("GOMAXPROCS=%d run %d: plan JSON differs", procs, i)
			}
		}
	}
}

// TestSecretsNeverAppear renders a plan with secrets every way it can be
// shown and greps for the values.
func TestSecretsNeverAppear(t *testing.T) {
	sk := skeleton(t)
	secrets := []string{"TopSecret-42", "InlineSecret-77"}
	p := mustCompile(t, "Dibfile", vmDibfile, sk, map[string]string{"DEV_PASSWORD": secrets[0]})
	q := mustCompile(t, "Dibfile", vmDibfile, sk, map[string]string{"DEV_PASSWORD": "changed"})
	var out bytes.Buffer
	_ = p.WriteJSON(&out)
	_ = render.Text(&out, p, render.Options{Verbose: true})
	_ = render.DOT(&out, p)
	d := plan.Compare(p, q)
	_ = render.DiffText(&out, d, render.Options{})
	_ = render.JSON(&out, d)
	for _, s := range secrets {
		if bytes.Contains(out.Bytes(), []byte(s)) {
			t.Errorf("secret %q appears in a rendering", s)
		}
	}
	if p.Secrets["DIB_DEV_USER_PASSWORD"] != secrets[0] || p.Secrets["DIB_ROOT_PASS"] != secrets[1] {
		t.Errorf("secrets not kept in memory for the runtime: %v", len(p.Secrets))
	}
	// Nothing in the plan depends on a secret's value: the plan and the ID
	// an image carries give no way to test a guess (a changed secret is
	// the step cache's business, keyed with a local secret).
	var a, b bytes.Buffer
	_ = p.WriteJSON(&a)
	_ = q.WriteJSON(&b)
	if !d.Empty() || p.ID != q.ID || !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("a changed secret changed the plan")
	}
}

func TestPlanShape(t *testing.T) {
	p := mustCompile(t, "Dibfile", vmDibfile, skeleton(t), nil)
	var titles []string
	for _, s := range p.Steps {
		titles = append(titles, s.Title)
	}
	got := strings.Join(titles, "\n")
	want := strings.Join([]string{
		"bootstrap root filesystem", "write hook tree",
		"phase root.d", "phase extra-data.d", "phase pre-install.d", "phase install.d", "install packages",
		"phase post-install.d", "phase post-root.d", "compute image size", "partition disk", "phase block-device.d",
		"phase pre-finalise.d", "phase finalise.d", "install bootloader", "phase cleanup.d", "write manifests",
		"output qcow2", "checksum demo.qcow2", "output tar", "checksum demo.tar", "output raw", "checksum demo.raw",
	}, "\n")
	if got != want {
		t.Errorf("steps:\n%s\nwant:\n%s", got, want)
	}
	// Every step but the first depends on an earlier one.
	seen := map[string]bool{}
	for i, s := range p.Steps {
		if i > 0 && len(s.Deps) == 0 {
			t.Errorf("step %q has no dependency", s.Title)
		}
		for _, d := range s.Deps {
			if !seen[d] {
				t.Errorf("step %q depends on a later or unknown step", s.Title)
			}
		}
		seen[s.ID] = true
	}
	// Missing secret is flagged, DIB's variables are there with origins.
	env := map[string]plan.EnvVar{}
	for _, v := range p.Env {
		env[v.Name] = v
	}
	if v := env["DIB_DEV_USER_PASSWORD"]; !v.Secret || !v.Missing || v.Value != plan.Redacted || v.Origin.Line != 8 {
		t.Errorf("secret var = %+v", v)
	}
	for name, val := range map[string]string{"ARCH": "amd64", "DIB_RELEASE": "bookworm", "DISTRO_NAME": "debian", "IMAGE_NAME": "demo", "DIB_DEFAULT_INSTALLTYPE": "source"} {
		if env[name].Value != val {
			t.Errorf("%s = %q, want %q", name, env[name].Value, val)
		}
	}
	if o := env["DIB_RELEASE"].Origin; o.Kind != "dibfile" || o.Line != 3 || o.Col != 10 {
		t.Errorf("DIB_RELEASE origin = %+v", o)
	}
	// Host tools list the Debian package.
	tools := map[string]string{}
	for _, h := range p.HostTools {
		tools[h.Program] = h.Package
	}
	for prog, pkg := range map[string]string{"mmdebstrap": "mmdebstrap", "mke2fs": "e2fsprogs", "losetup": "mount", "grub-mkimage": "grub-common", "mkfs.vfat": "dosfstools", "mcopy": "mtools", "tar": "tar", "sha256sum": "coreutils"} {
		if tools[prog] != pkg {
			t.Errorf("host tool %s -> %q, want %q", prog, tools[prog], pkg)
		}
	}
	// Outputs use DIB's names, raw last.
	var outs []string
	for _, o := range p.Outputs {
		outs = append(outs, o.Path)
	}
	if strings.Join(outs, " ") != "demo.qcow2 demo.tar demo.raw" {
		t.Errorf("outputs %v", outs)
	}
}

func TestDNFProviderVariables(t *testing.T) {
	src := "name: c\ndistro: centos-minimal\nrelease: 10-stream\nelements: [vm]\noutputs: [qcow2]\nenv:\n" +
		"  DIB_YUM_MINIMAL_BOOTSTRAP_REPOS: /srv/repos\n  DIB_YUM_MINIMAL_EXTRA_REPOS: /srv/extra\n" +
		"  DIB_YUM_MINIMAL_BOOTSTRAP_PACKAGES: epel-release\n  DIB_DISTRIBUTION_MIRROR: http://mirror.example/centos\n"
	p := mustCompile(t, "Dibfile", src, skeleton(t), nil)
	b := p.Steps[0].Bootstrap
	n := b.DNF
	if n == nil || n.ReposDir != "/srv/repos" || n.ExtraReposDir != "/srv/extra" || len(n.RepoFiles) != 0 ||
		n.RPMDBPath != "/usr/lib/sysimage/rpm" || n.Releasever != "10" || b.Mirror != "http://mirror.example/centos" {
		t.Fatalf("bootstrap %+v, dnf %+v", b, n)
	}
	if n.Bootstrap[0] != "epel-release" {
		t.Errorf("release packages %q", n.Bootstrap)
	}
	lines := strings.Join(n.Describe(), "\n")
	for _, want := range []string{"--setopt=reposdir=/srv/repos", "--installroot $TARGET_ROOT install dnf", "--dbpath /usr/lib/sysimage/rpm"} {
		if !strings.Contains(lines, want) {
			t.Errorf("commands lack %q:\n%s", want, lines)
		}
	}
	p8 := mustCompile(t, "Dibfile", "name: c\ndistro: centos-minimal\nrelease: 8-stream\nelements: [vm]\noutputs: [qcow2]\n", skeleton(t), nil)
	if m := p8.Steps[0].Bootstrap.Mirror; m != "https://vault.centos.org" {
		t.Errorf("8-stream mirror %q", m)
	}
}

func TestTreeOnlyHasNoDisk(t *testing.T) {
	p := mustCompile(t, "Dibfile", "name: t\ndistro: debian-minimal\noutputs: [tar]\n", skeleton(t), nil)
	for _, s := range p.Steps {
		if s.Partition != nil || s.ImageSize != nil || s.Bootloader != nil {
			t.Errorf("tar-only build has disk step %q", s.Title)
		}
	}
}

func TestUnavailableProvider(t *testing.T) {
	p := mustCompile(t, "Dibfile", "name: s\ndistro: opensuse-minimal\nelements: [vm]\noutputs: [qcow2]\n", skeleton(t), nil)
	b := p.Steps[0].Bootstrap
	if b == nil || b.Available || !strings.Contains(b.Reason, "not available") || b.Family != "suse" {
		t.Fatalf("bootstrap = %+v", b)
	}
}

func TestDNFProvider(t *testing.T) {
	p := mustCompile(t, "Dibfile", "name: c\ndistro: centos-minimal\nelements: [vm, grub2]\noutputs: [qcow2]\n", skeleton(t), nil)
	b := p.Steps[0].Bootstrap
	if b == nil || !b.Available || b.Provider != "dnf" || b.Family != "redhat" || b.DNF == nil {
		t.Fatalf("bootstrap = %+v", b)
	}
	n := b.DNF
	if n.Distro != "centos" || n.Releasever != "9" || n.Arch != "x86_64" || n.RPMDBPath != "/var/lib/rpm" || n.ReposDir != "" {
		t.Errorf("dnf = %+v", n)
	}
	if got := strings.Join(n.Bootstrap, " "); got != "basesystem filesystem setup centos-gpg-keys centos-stream-release centos-stream-repos" {
		t.Errorf("release packages %q", got)
	}
	if got := strings.Join(n.Manager, " "); got != "dnf dnf-plugins-core curl libcurl glibc-minimal-langpack glibc-langpack-en coreutils" {
		t.Errorf("package manager %q", got)
	}
	var repos []string
	for _, f := range n.RepoFiles {
		repos = append(repos, f.Path)
	}
	if strings.Join(repos, " ") != "yum.repos.d/9-stream/appstream.repo yum.repos.d/9-stream/base.repo" {
		t.Errorf("repo files %q", repos)
	}
	if !slices.Contains(p.Steps[0].Tools, "dnf") || !slices.Contains(p.Steps[0].Tools, "rpm") {
		t.Errorf("tools %q", p.Steps[0].Tools)
	}
	// grub2's package names are mapped for the redhat family by its pkg-map.
	var got []string
	for _, s := range p.Steps {
		if s.Phase == nil {
			continue
		}
		for _, pk := range s.Phase.Packages {
			if pk.Element == "grub2" {
				got = append(got, pk.Name+" -> "+strings.Join(pk.Mapped, " ")+" ("+pk.MapNote+")")
			}
		}
	}
	if len(got) == 0 || !strings.Contains(strings.Join(got, "\n"), "from element grub2's pkg-map") {
		t.Errorf("grub2 packages for centos: %q", got)
	}
	t.Log(strings.Join(got, "\n"))
}

func TestErrorsArePositioned(t *testing.T) {
	for name, tc := range map[string]struct{ src, want string }{
		"unknown element": {"name: x\ndistro: debian-minimal\nelements: [no-such-element]\noutputs: [tar]\n", "Dibfile:3:"},
		"bad layout":      {"name: x\ndistro: debian-minimal\nimage-size: 1GiB\noutputs: [raw]\nblock-device:\n  - local_loop:\n      name: image0\n  - partitioning:\n      base: image0\n      label: mbr\n      partitions:\n        - name: root\n          size: 2GiB\n", "Dibfile:"},
	} {
		_, ds := compileSrc(t, "Dibfile", tc.src, skeleton(t), nil)
		if !ds.HasErrors() {
			t.Errorf("%s: no error", name)
			continue
		}
		if !strings.HasPrefix(ds[0].Error(), tc.want) {
			t.Errorf("%s: %v", name, ds)
		}
	}
}

// writeElement creates an element directory with files (path -> content;
// scripts in *.d dirs are executable).
func writeElement(t testing.TB, root, name string, files map[string]string) {
	for p, c := range files {
		full := filepath.Join(root, name, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.Contains(p, ".d/") {
			mode = 0o755
		}
		if err := os.WriteFile(full, []byte(c), mode); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDiffKinds changes one kind of input at a time and checks what the
// plan diff reports.
func TestDiffKinds(t *testing.T) {
	sk := skeleton(t)
	base := "name: d\ndistro: debian-minimal\nelements: [vm, mine]\nimage-size: 4GiB\noutputs: [qcow2]\n"
	mk := func(script, pkgs string) string {
		dir := t.TempDir()
		writeElement(t, dir, "mine", map[string]string{
			"install.d/50-mine":     script,
			"package-installs.yaml": pkgs,
		})
		return dir
	}
	a := mustCompile(t, "Dibfile", base, sk, nil, mk("#!/bin/sh\necho one\n", "vim:\n"))
	for _, tc := range []struct {
		name  string
		src   string
		dir   string
		check func(*plan.Diff) bool
	}{
		{"script", base, mk("#!/bin/sh\necho two\n", "vim:\n"), func(d *plan.Diff) bool {
			return len(d.Scripts) == 1 && strings.Contains(d.Scripts[0].Unified, "-echo one\n+echo two")
		}},
		{"package", base, mk("#!/bin/sh\necho one\n", "vim:\nemacs:\n"), func(d *plan.Diff) bool {
			return len(d.Packages) == 1 && d.Packages[0].Key == "install.d install emacs (mine)"
		}},
		{"env", strings.Replace(base, "outputs", "env: {DIB_X: y}\noutputs", 1), mk("#!/bin/sh\necho one\n", "vim:\n"), func(d *plan.Diff) bool {
			return len(d.Env) == 1 && d.Env[0].Key == "DIB_X" && d.Env[0].Change == plan.Added
		}},
		{"layout", strings.Replace(base, "4GiB", "6GiB", 1), mk("#!/bin/sh\necho one\n", "vim:\n"), func(d *plan.Diff) bool {
			return len(d.Layout) > 0 && len(d.Scripts) == 0
		}},
		{"output", strings.Replace(base, "[qcow2]", "[qcow2, vhd]", 1), mk("#!/bin/sh\necho one\n", "vim:\n"), func(d *plan.Diff) bool {
			return len(d.Outputs) == 1 && d.Outputs[0].Key == "d.vhd" && d.Steps[len(d.Steps)-1].Change == plan.Added
		}},
		{"element", strings.Replace(base, "mine]", "mine, growroot]", 1), mk("#!/bin/sh\necho one\n", "vim:\n"), func(d *plan.Diff) bool {
			return len(d.Elements) == 2 && d.Elements[0].Key == "growroot" && d.Elements[1].Key == "install-static"
		}},
	} {
		b := mustCompile(t, "Dibfile", tc.src, sk, nil, tc.dir)
		d := plan.Compare(a, b)
		if d.Empty() || !tc.check(d) {
			var out bytes.Buffer
			_ = render.DiffText(&out, d, render.Options{})
			t.Errorf("%s: unexpected diff:\n%s", tc.name, out.String())
		}
	}
	// The same inputs: no difference.
	if d := plan.Compare(a, mustCompile(t, "Dibfile", base, sk, nil, mk("#!/bin/sh\necho one\n", "vim:\n"))); !d.Empty() {
		t.Errorf("same inputs differ: %+v", d)
	}
}

// synthetic builds an element tree of n elements: e0000 depends on a few
// later ones, in a deep and wide graph, each with hooks and packages.
func synthetic(n int) fstest.MapFS {
	m := fstest.MapFS{}
	exec := &fstest.MapFile{Data: []byte("#!/bin/sh\ntrue\n"), Mode: 0o755}
	m["synthos/element-provides"] = &fstest.MapFile{Data: []byte("operating-system\n")}
	m["synthos/root.d/10-root"] = exec
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("e%04d", i)
		var deps []string
		for _, j := range []int{2*i + 1, 2*i + 2, i + 1} {
			if j < n {
				deps = append(deps, fmt.Sprintf("e%04d", j))
			}
		}
		m[name+"/element-deps"] = &fstest.MapFile{Data: []byte(strings.Join(deps, "\n") + "\n")}
		m[name+"/install.d/50-"+name] = exec
		m[name+"/environment.d/10-"+name] = &fstest.MapFile{Data: []byte("export X=1\n")}
		m[name+"/package-installs.yaml"] = &fstest.MapFile{Data: []byte("pkg-" + name + ":\n")}
	}
	return m
}

func TestSynthetic(t *testing.T) {
	p := mustCompile(t, "Dibfile", "name: s\ndistro: synthos\nskip-base: true\nelements: [e0000]\noutputs: [tar]\n", synthetic(200), nil)
	if len(p.Elements) != 201 {
		t.Fatalf("%d elements", len(p.Elements))
	}
}

func BenchmarkCompileDebianVM(b *testing.B) {
	sk := skeleton(b)
	for i := 0; i < b.N; i++ {
		mustCompile(b, "Dibfile", vmDibfile, sk, nil)
	}
}

// BenchmarkCompileSynthetic2000 reads the tree from disk: fstest.MapFS
// scans all its entries on every directory open, which would measure the
// test file system rather than the compiler.
func BenchmarkCompileSynthetic2000(b *testing.B) {
	dir := b.TempDir()
	for name, f := range synthetic(2000) {
		full := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(full, f.Data, f.Mode|0o644); err != nil {
			b.Fatal(err)
		}
	}
	fsys := os.DirFS(dir)
	src := "name: s\ndistro: synthos\nskip-base: true\nelements: [e0000]\noutputs: [tar]\n"
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		mustCompile(b, "Dibfile", src, fsys, nil)
	}
}

// TestResolveTemplate: the layout the runtime resolves from the plan's
// template at the preview size is the plan's, and a bigger size moves only
// the last partition's end.
func TestResolveTemplate(t *testing.T) {
	src := strings.Replace(vmDibfile, "image-size: 4GiB\n", "", 1)
	p := mustCompile(t, "Dibfile", src, skeleton(t), nil)
	var part *plan.Partition
	for _, s := range p.Steps {
		if s.Partition != nil {
			part = s.Partition
		}
	}
	if part == nil || part.SizeKnown || part.PreviewSize != PreviewSize {
		t.Fatalf("partition step = %+v", part)
	}
	// Through JSON, as from a plan file.
	q, err := plan.Read(bytes.NewReader(planJSON(t, p)))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range q.Steps {
		if s.Partition != nil {
			part = s.Partition
		}
	}
	same, ds := layout.Resolve(part.Template, PreviewSize)
	if err := ds.Err(); err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	_ = render.JSON(&a, same)
	_ = render.JSON(&b, part.Layout)
	if a.String() != b.String() {
		t.Error("relayout at the preview size differs from the plan's layout")
	}
	big, ds := layout.Resolve(part.Template, 8<<30)
	if err := ds.Err(); err != nil {
		t.Fatal(err)
	}
	if big.Images[0].SizeBytes != 8<<30 || big.PartitionTables[0].Partitions[0].Start != part.Layout.PartitionTables[0].Partitions[0].Start {
		t.Errorf("8 GiB relayout: %+v", big.Images)
	}
	if _, ds := layout.Resolve(part.Template, 1<<20); !ds.HasErrors() {
		t.Error("a 1 MiB disk fitted the EFI layout")
	}
}

func TestNoFinalImage(t *testing.T) {
	p := mustCompile(t, "Dibfile", "name: n\ndistro: debian-minimal\nelements: [vm, no-final-image]\nimage-size: 4GiB\noutputs: [qcow2, tar]\n", elements.FS(), nil)
	if len(p.Outputs) != 1 || p.Outputs[0].Format != "tar" {
		t.Errorf("outputs = %+v", p.Outputs)
	}
	if len(p.Diagnostics) == 0 || !strings.Contains(p.Diagnostics[len(p.Diagnostics)-1].Message, "no-final-image") {
		t.Errorf("no warning: %v", p.Diagnostics)
	}
}

func TestUpdateSources(t *testing.T) {
	p := mustCompile(t, "Dibfile", "name: u\ndistro: debian-minimal\noutputs: [tar]\n", skeleton(t), nil)
	want := "deb http://deb.debian.org/debian bookworm-updates main|deb http://deb.debian.org/debian-security bookworm-security main"
	if got := strings.Join(p.Steps[0].Bootstrap.Sources, "|"); got != want {
		t.Errorf("sources %q", got)
	}
	p = mustCompile(t, "Dibfile", "name: u\ndistro: debian-minimal\nenv: {DIB_DEBIAN_NO_UPDATES: \"1\"}\noutputs: [tar]\n", skeleton(t), nil)
	if len(p.Steps[0].Bootstrap.Sources) != 0 {
		t.Error("DIB_DEBIAN_NO_UPDATES=1 ignored")
	}
	p = mustCompile(t, "Dibfile", "name: u\ndistro: ubuntu-minimal\noutputs: [tar]\n", skeleton(t), nil)
	if len(p.Steps[0].Bootstrap.Sources) != 0 {
		t.Error("ubuntu got Debian's security sources")
	}
}

func TestRamdiskHasNoDefaultImage(t *testing.T) {
	p := mustCompile(t, "Dibfile", "name: r\ndistro: debian-minimal\nramdisk: true\nelements: [devuser]\n", elements.FS(), nil)
	if len(p.Outputs) != 0 {
		t.Errorf("ramdisk build got default outputs %+v", p.Outputs)
	}
	for _, s := range p.Steps {
		if s.Partition != nil {
			t.Error("ramdisk build without disk outputs has a partition step")
		}
	}
	p = mustCompile(t, "Dibfile", "name: r\ndistro: debian-minimal\nramdisk: true\noutputs: [tar]\n", elements.FS(), nil)
	if len(p.Outputs) != 1 {
		t.Errorf("explicit outputs dropped: %+v", p.Outputs)
	}
}

// TestJournalAndExtraSize: DIB_JOURNAL_SIZE sizes the ext4 journal (mkfs
// -J size=N and the computed image size) and DIB_IMAGE_EXTRA_SIZE replaces
// the / 0.6 margin, as in disk-image-create; bad values are positioned
// errors.
func TestJournalAndExtraSize(t *testing.T) {
	base := strings.Replace(vmDibfile, "image-size: 4GiB\n", "", 1)
	withEnv := func(kv string) string {
		return strings.Replace(base, "env:\n", "env:\n"+kv, 1)
	}
	find := func(p *plan.Plan) (*plan.ImageSize, *plan.Partition) {
		var is *plan.ImageSize
		var part *plan.Partition
		for _, s := range p.Steps {
			if s.ImageSize != nil {
				is = s.ImageSize
			}
			if s.Partition != nil {
				part = s.Partition
			}
		}
		return is, part
	}
	is, part := find(mustCompile(t, "Dibfile", base, skeleton(t), nil))
	if is.JournalMiB != 0 || is.ExtraMiB != 0 || !strings.Contains(part.Params.RootFSOpts, "-J size=64 ") || !strings.Contains(is.Rule, "/ 0.6 + 64 MiB journal") {
		t.Errorf("defaults: %+v %q", is, part.Params.RootFSOpts)
	}
	is, part = find(mustCompile(t, "Dibfile", withEnv("  DIB_JOURNAL_SIZE: \"128\"\n  DIB_IMAGE_EXTRA_SIZE: \"200\"\n"), skeleton(t), nil))
	if is.JournalMiB != 128 || is.ExtraMiB != 200 || !strings.Contains(part.Params.RootFSOpts, "-J size=128 ") ||
		!strings.Contains(is.Rule, "du of the tree + 200 MiB (DIB_IMAGE_EXTRA_SIZE) + 128 MiB journal") {
		t.Errorf("set: %+v %q", is, part.Params.RootFSOpts)
	}
	var mkfsOpts []string
	for _, f := range part.Layout.Filesystems {
		mkfsOpts = append(mkfsOpts, f.Opts...)
	}
	if !strings.Contains(strings.Join(mkfsOpts, " "), "size=128") {
		t.Errorf("the root filesystem's mkfs options %q lack the journal", mkfsOpts)
	}
	for _, bad := range []string{"  DIB_JOURNAL_SIZE: big\n", "  DIB_IMAGE_EXTRA_SIZE: \"-3\"\n"} {
		_, ds := compileSrc(t, "Dibfile", withEnv(bad), skeleton(t), nil)
		name, _, _ := strings.Cut(strings.TrimSpace(bad), ":")
		if !ds.HasErrors() || !strings.Contains(ds.Error(), name) || ds[0].Line == 0 {
			t.Errorf("%s: %v", bad, ds)
		}
	}
	// DIB drops metadata_csum for any DIB_RELEASE=trusty (an Ubuntu release).
	trusty := strings.Replace(strings.Replace(base, "release: bookworm", "release: trusty", 1), "debian-minimal", "ubuntu-minimal", 1)
	_, part = find(mustCompile(t, "Dibfile", trusty, skeleton(t), nil))
	if !strings.HasPrefix(part.Params.RootFSOpts, "-O ^metadata_csum -i 4096") {
		t.Errorf("trusty: %q", part.Params.RootFSOpts)
	}
}

// TestPackageDifferences: a deliberate difference from DIB's packages is in
// the plan and `dib plan` shows it as a note; the same build on amd64 has
// none.
func TestPackageDifferences(t *testing.T) {
	src := "name: n\ndistro: debian-minimal\narch: %s\nelements: [stable-interface-names]\noutputs: [tar]\n"
	p := mustCompile(t, "Dibfile", fmt.Sprintf(src, "arm64"), elements.FS(), nil)
	if len(p.PackageDifferences) != 1 || p.PackageDifferences[0].Packages[0] != "biosdevname" || p.PackageDifferences[0].Change != "left out" {
		t.Fatalf("arm64 differences: %+v", p.PackageDifferences)
	}
	var out bytes.Buffer
	if err := render.Text(&out, p, render.Options{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "note: left out biosdevname (element stable-interface-names): DIB asks for it") {
		t.Errorf("dib plan does not show the difference:\n%s", out.String())
	}
	if p := mustCompile(t, "Dibfile", fmt.Sprintf(src, "amd64"), elements.FS(), nil); len(p.PackageDifferences) != 0 {
		t.Errorf("amd64 differences: %+v", p.PackageDifferences)
	}
}

// TestOutputTools: each output step runs the format table's tools, every
// one of which has a Debian package; qemu-img-options on qcow2 (which dib
// writes itself otherwise) add qemu-img, so examples/ubuntu-vm.yaml's
// output step may run it.
func TestOutputTools(t *testing.T) {
	for _, f := range format.All() {
		for _, tool := range f.HostTools(true) {
			if toolPackages[tool] == "" {
				t.Errorf("format %s: tool %s has no Debian package in toolPackages", f.Name, tool)
			}
		}
	}
	src := "name: t\ndistro: debian-minimal\noutputs:\n  - format: qcow2\n    qemu-img-options: {compat: \"1.1\"}\n  - tgz\n  - raw\n"
	p := mustCompile(t, "Dibfile", src, skeleton(t), nil)
	want := map[string][]string{"qcow2": {"qemu-img"}, "tgz": {"gzip", "tar"}, "raw": nil}
	for _, s := range p.Steps {
		if s.Output == nil {
			continue
		}
		if !slices.Equal(s.Tools, want[s.Output.Format]) {
			t.Errorf("output %s: tools %q, want %q", s.Output.Format, s.Tools, want[s.Output.Format])
		}
		delete(want, s.Output.Format)
	}
	if len(want) > 0 {
		t.Errorf("no output step for %v", want)
	}
	found := false
	for _, h := range p.HostTools {
		found = found || h.Program == "qemu-img"
	}
	if !found {
		t.Error("qemu-img is not among the plan's host tools")
	}
}

// TestIsoOutput: the iso output is the iso element's; asking for either
// brings the other, the output step names the element's host tools, and a
// baremetal image's ISO is NAME-boot.iso (DIB's names).
func TestIsoOutput(t *testing.T) {
	cases := []struct{ name, src, path string }{
		{"output asks", "name: r\ndistro: debian-minimal\nramdisk: true\noutputs: [iso]\n", "r.iso"},
		{"element asks", "name: r\ndistro: debian-minimal\nramdisk: true\nelements: [iso]\n", "r.iso"},
		{"baremetal", "name: b\ndistro: debian-minimal\nelements: [vm, baremetal, iso]\noutputs: [qcow2]\n", "b-boot.iso"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := mustCompile(t, "Dibfile", c.src, elements.FS(), nil)
			if !slices.Contains(p.Image.Requested, "iso") {
				t.Errorf("requested elements %q lack iso", p.Image.Requested)
			}
			var step *plan.Step
			for i := range p.Steps {
				if s := &p.Steps[i]; s.Output != nil && s.Output.Format == "iso" {
					step = s
				}
			}
			if step == nil {
				t.Fatalf("no iso output step; outputs %+v", p.Outputs)
			}
			if step.Output.Path != c.path || !reflect.DeepEqual(step.Tools, []string{"mcopy", "mkfs.vfat", "mmd", "xorriso"}) {
				t.Errorf("iso output %+v, tools %q", step.Output, step.Tools)
			}
			var hostTools []string
			for _, h := range p.HostTools {
				hostTools = append(hostTools, h.Program+"="+h.Package)
			}
			if !slices.Contains(hostTools, "xorriso=xorriso") {
				t.Errorf("host tools %q lack xorriso", hostTools)
			}
		})
	}
}

// TestCachePoints: the snapshot points are every tree-changing step
// before the disk (a phase with scripts, the Dibfile's packages), with a
// point after install.d's package-installs script; none from the disk
// on while a tree output (tar here) reads the mounted tree. Steps that
// download are mirror steps: the bootstrap, the packages, chroot phases
// installing packages, and a phase fetching sources.
func TestCachePoints(t *testing.T) {
	src := strings.Replace(vmDibfile, "elements: [vm,", "elements: [source-repositories, vm,", 1)
	if src == vmDibfile {
		t.Fatal("vmDibfile has no elements list to extend")
	}
	p := mustCompile(t, "Dibfile", src, elements.FS(), nil)
	var snap, mirror []string
	disk := false
	for _, s := range p.Steps {
		if s.Kind == plan.KindPartition {
			disk = true
		}
		if s.Snapshot {
			if disk {
				t.Errorf("%s after the disk is assembled is a snapshot point", s.Title)
			}
			snap = append(snap, s.Title+strings.Join(s.SnapshotAfter, ","))
		}
		if s.Mirror {
			mirror = append(mirror, s.Title)
		}
	}
	want := []string{"bootstrap root filesystem", "phase root.d", "phase extra-data.d", "phase pre-install.d10-package-installs",
		"phase install.d01-package-installs", "install packages", "phase post-install.d"}
	if !reflect.DeepEqual(snap, want) {
		t.Errorf("snapshot points %q, want %q", snap, want)
	}
	if want := []string{"bootstrap root filesystem", "phase extra-data.d", "phase pre-install.d", "phase install.d", "install packages"}; !reflect.DeepEqual(mirror, want) {
		t.Errorf("mirror steps %q, want %q", mirror, want)
	}
}

// TestSourceDateEpochReachesTheDisk: the Dibfile's source-date-epoch is a
// parameter of the partition and bootloader steps (the times they stamp on
// the filesystems), so it changes their IDs and nothing before them.
func TestSourceDateEpochReachesTheDisk(t *testing.T) {
	base := mustCompile(t, "Dibfile", vmDibfile, skeleton(t), nil)
	p := mustCompile(t, "Dibfile", vmDibfile+"source-date-epoch: 1700000000\n", skeleton(t), nil)
	if len(p.Steps) != len(base.Steps) {
		t.Fatalf("%d steps, %d without source-date-epoch", len(p.Steps), len(base.Steps))
	}
	disk := false
	for i, s := range p.Steps {
		switch s.Kind {
		case plan.KindPartition:
			disk = true
			if s.Partition.SourceDateEpoch != 1700000000 {
				t.Errorf("partition step: source_date_epoch %d", s.Partition.SourceDateEpoch)
			}
		case plan.KindBootloader:
			if s.Bootloader.SourceDateEpoch != 1700000000 {
				t.Errorf("bootloader step: source_date_epoch %d", s.Bootloader.SourceDateEpoch)
			}
		}
		if same := s.ID == base.Steps[i].ID; same == disk {
			t.Errorf("step %q: ID changed %v, want %v", s.Title, !same, disk)
		}
	}
	if !disk {
		t.Fatal("no partition step")
	}
}

// TestSourceDateEpochDefault: without source-date-epoch, the plan says the
// epoch comes from the installed packages, in the plan and in every step
// that uses it (the runtime resolves it from the tree); an explicit value,
// 0 included, is the number and no source.
func TestSourceDateEpochDefault(t *testing.T) {
	for _, c := range []struct {
		extra string
		want  plan.Epoch
	}{
		{"", plan.Epoch{SourceDateEpochFrom: plan.EpochFromPackages}},
		{"source-date-epoch: 0\n", plan.Epoch{}},
		{"source-date-epoch: 1700000000\n", plan.Epoch{SourceDateEpoch: 1700000000}},
	} {
		p := mustCompile(t, "Dibfile", vmDibfile+c.extra, skeleton(t), nil)
		if p.Epoch != c.want {
			t.Errorf("%q: plan epoch %+v, want %+v", c.extra, p.Epoch, c.want)
		}
		seen := map[string]bool{}
		for _, s := range p.Steps {
			var got *plan.Epoch
			switch {
			case s.Partition != nil:
				got = &s.Partition.Epoch
			case s.Bootloader != nil:
				got = &s.Bootloader.Epoch
			case s.Output != nil:
				got = &s.Output.Epoch
			default:
				continue
			}
			seen[s.Kind] = true
			if *got != c.want {
				t.Errorf("%q: step %q epoch %+v, want %+v", c.extra, s.Title, *got, c.want)
			}
		}
		if !seen[plan.KindPartition] || !seen[plan.KindBootloader] || !seen[plan.KindOutput] {
			t.Errorf("%q: steps with an epoch %v", c.extra, seen)
		}
	}
}

// TestCachePointFinalDisk: when every output comes from the disk image,
// the last state step (the manifests) is a point too, the only one after
// the disk is assembled: the runtime keeps the finished image there, so a
// plan that only adds an output runs only it.
func TestCachePointFinalDisk(t *testing.T) {
	src := strings.Replace(vmDibfile, "outputs: [qcow2, tar, raw]", "outputs: [qcow2, raw]", 1)
	if src == vmDibfile {
		t.Fatal("vmDibfile's outputs changed")
	}
	p := mustCompile(t, "Dibfile", src, elements.FS(), nil)
	var after []string
	disk := false
	for _, s := range p.Steps {
		if s.Kind == plan.KindPartition {
			disk = true
		}
		if disk && s.Snapshot {
			after = append(after, s.Title)
		}
	}
	if want := []string{"write manifests"}; !reflect.DeepEqual(after, want) {
		t.Errorf("snapshot points after the disk is assembled: %q, want %q", after, want)
	}
}
