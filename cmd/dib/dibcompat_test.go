package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/spec/dibyaml"
)

// runEnv runs dib with an explicit environment instead of the process's.
func runEnv(t *testing.T, environ []string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runWith(args, &out, &errb, environ)
	return code, out.String(), errb.String()
}

// nodepoolEnv is the environment nodepool-builder gives disk-image-create:
// its own, ELEMENTS_PATH from elements-dir and the diskimage's env-vars.
var nodepoolEnv = []string{
	"HOME=/var/lib/nodepool",
	"PATH=/usr/local/bin:/usr/bin:/bin",
	"ELEMENTS_PATH=testdata/elements",
	"DIB_CHECKSUM=1",
	"DIB_IMAGE_CACHE=/opt/dib_cache",
	"DIB_RELEASE=bookworm",
	"DIB_DISTRIBUTION_MIRROR=http://mirror.example.org/debian",
	"DIB_DEBIAN_COMPONENTS=main",
	"DIB_GRUB_TIMEOUT=0",
	"DIB_DEV_USER_PASSWORD=s3cret",
}

// nodepoolArgs is nodepool-builder's command line (nodepool/builder.py:
// "-x -t TYPES --checksum --no-tmpfs [--qemu-img-options compat=0.10]
// -o PATH ELEMENTS").
var nodepoolArgs = []string{
	"-x", "-t", "qcow2,raw", "--checksum", "--no-tmpfs", "--qemu-img-options", "compat=0.10",
	"-o", "/opt/nodepool/images/debian-bookworm-0000000001",
	"debian-minimal", "vm", "block-device-gpt", "growroot", "devuser", "nodepool-base",
}

// TestDiskImageCreateNodepool: nodepool's command line and environment
// plan the image nodepool asks for, and the Dibfile --print-dibfile
// writes plans exactly the same build.
func TestDiskImageCreateNodepool(t *testing.T) {
	code, dibfile, errs := runEnv(t, nodepoolEnv, append([]string{"disk-image-create", "--print-dibfile"}, nodepoolArgs...)...)
	if code != 0 {
		t.Fatalf("--print-dibfile: exit %d\n%s", code, errs)
	}
	for _, want := range []string{
		"name: debian-bookworm-0000000001\n",
		"elements: [debian-minimal, vm, block-device-gpt, growroot, devuser, nodepool-base]\n",
		"elements-path: [testdata/elements]\n",
		"  DIB_RELEASE: bookworm\n",
		"  DIB_DEV_USER_PASSWORD:\n    secret: true\n    from-env: DIB_DEV_USER_PASSWORD\n",
		"checksum: true\n", "tmpfs: false\n", "debug-trace: 1\n",
		"# Outputs go to /opt/nodepool/images: dib apply -O /opt/nodepool/images\n",
	} {
		if !strings.Contains(dibfile, want) {
			t.Errorf("Dibfile lacks %q:\n%s", want, dibfile)
		}
	}
	if strings.Contains(dibfile, "s3cret") || strings.Contains(dibfile, "DIB_CHECKSUM") {
		t.Errorf("the Dibfile has the password or the variable --checksum sets:\n%s", dibfile)
	}

	cl, plans := dibPlansForTest(t, nodepoolEnv, nodepoolArgs)
	if cl.OutputDir != "/opt/nodepool/images" || !cl.NoTmpfs {
		t.Errorf("output dir %q, no tmpfs %v", cl.OutputDir, cl.NoTmpfs)
	}
	p := plans[0]
	if p.Image.Name != "debian-bookworm-0000000001" || p.Image.Distro != "debian-minimal" {
		t.Errorf("image %+v", p.Image)
	}
	var formats []string
	for _, o := range p.Outputs {
		formats = append(formats, o.Format+" "+o.Path+" "+strings.Join(o.Checksums, ","))
		if o.Format == "qcow2" && o.QemuImgOptions["compat"] != "0.10" {
			t.Errorf("qcow2 options %v", o.QemuImgOptions)
		}
	}
	if want := []string{"qcow2 debian-bookworm-0000000001.qcow2 md5,sha256", "raw debian-bookworm-0000000001.raw md5,sha256"}; !slices.Equal(formats, want) {
		t.Errorf("outputs %q, want %q", formats, want)
	}
	env := map[string]plan.EnvVar{}
	for _, e := range p.Env {
		env[e.Name] = e
	}
	if env["DIB_DEBUG_TRACE"].Value != "1" || env["DIB_DISTRIBUTION_MIRROR"].Value != "http://mirror.example.org/debian" ||
		env["DIB_GRUB_TIMEOUT"].Value != "0" || !env["DIB_DEV_USER_PASSWORD"].Secret {
		t.Errorf("env %+v", env)
	}
	found := false
	for _, e := range p.Elements {
		if e.Name == "nodepool-base" {
			found = strings.HasSuffix(e.Source, filepath.Join("testdata", "elements"))
		}
	}
	if !found {
		t.Errorf("nodepool-base not taken from ELEMENTS_PATH: %+v", p.Elements)
	}

	// The printed Dibfile is the build: planning it gives the same plan.
	path := filepath.Join(t.TempDir(), "Dibfile")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(dibfile, "testdata/elements", mustAbs(t, "testdata/elements"))), 0o644); err != nil {
		t.Fatal(err)
	}
	code, js, errs := runEnv(t, nodepoolEnv, "plan", "--json", path)
	if code != 0 {
		t.Fatalf("plan of the printed Dibfile: exit %d\n%s", code, errs)
	}
	var fromFile plan.Plan
	if err := json.Unmarshal([]byte(js), &fromFile); err != nil {
		t.Fatal(err)
	}
	if len(fromFile.Steps) != len(p.Steps) {
		t.Fatalf("%d steps from the file, %d from the command line", len(fromFile.Steps), len(p.Steps))
	}
	for i := range p.Steps {
		if fromFile.Steps[i].ID != p.Steps[i].ID {
			t.Errorf("step %d (%s): %s from the file, %s from the command line", i, p.Steps[i].Title, fromFile.Steps[i].ID, p.Steps[i].ID)
		}
	}

	// --print-plan shows the plan and builds nothing.
	code, text, errs := runEnv(t, nodepoolEnv, append([]string{"disk-image-create", "--print-plan"}, nodepoolArgs...)...)
	if code != 0 || !strings.Contains(text, "Plan for image debian-bookworm-0000000001") || !strings.Contains(text, "debian-bookworm-0000000001.raw") {
		t.Errorf("--print-plan: exit %d\n%s%s", code, text, errs)
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestDiskImageCreateSeeds: the command lines of DIB users' write-ups
// (../shared/seeds) that name elements dib has plan; the others fail
// with the element named.
func TestDiskImageCreateSeeds(t *testing.T) {
	for _, tc := range []struct {
		env        []string
		args       []string
		ok         bool
		wantOutput string
		wantErr    string
	}{
		{nil, []string{"disk-image-create", "-o", "centos", "vm", "block-device-gpt", "centos-minimal"}, true, "centos.qcow2", ""},
		{[]string{"DIB_RELEASE=9-stream", "DIB_YUM_MINIMAL_BOOTSTRAP_REPOS=/etc/yum.repos.d"}, []string{"disk-image-create", "vm", "block-device-gpt", "centos-minimal"}, true, "image.qcow2", ""},
		{nil, []string{"disk-image-create", "-a", "amd64", "-o", "debian-amd64", "vm", "debian-minimal"}, true, "debian-amd64.qcow2", ""},
		{nil, []string{"ramdisk-image-create", "-o", "deploy", "debian-minimal"}, true, "", ""},
		{[]string{"DIB_DEV_USER_USERNAME=user", "DIB_DEV_USER_PASSWORD=password"}, []string{"disk-image-create", "centos7", "baremetal", "dhcp-all-interfaces", "grub2", "-o", "my-image"}, false, "", "Element 'centos7' not found"},
		{[]string{"ELEMENTS_PATH=elements"}, []string{"disk-image-create", "vm", "ubuntu", "apt-sources", "custom-script", "-a", "amd64", "-o", "ubuntu-precise"}, false, "", "ELEMENTS_PATH entry 'elements' is not a directory"},
		{nil, []string{"disk-image-create", "vm", "ubuntu", "apt-sources", "custom-script", "-a", "amd64", "-o", "ubuntu-precise"}, false, "", "Element 'custom-script' not found"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			args := append([]string{tc.args[0], "--print-plan"}, tc.args[1:]...)
			code, out, errs := runEnv(t, tc.env, args...)
			if (code == 0) != tc.ok {
				t.Fatalf("exit %d, want success %v\n%s%s", code, tc.ok, out, errs)
			}
			if tc.ok && !strings.Contains(out, tc.wantOutput) {
				t.Errorf("plan lacks %q:\n%s", tc.wantOutput, out)
			}
			if !tc.ok && (code != exitFailed || !strings.Contains(errs, tc.wantErr)) {
				t.Errorf("exit %d, stderr lacks %q:\n%s", code, tc.wantErr, errs)
			}
		})
	}
}

// TestDiskImageCreateUsage: DIB's exit status 1 for a bad command line,
// --help and --version exit 0, and the symlink names select the command.
func TestDiskImageCreateUsage(t *testing.T) {
	code, _, errs := runEnv(t, nil, "disk-image-create", "--image-sise", "3", "debian-minimal")
	if code != exitFailed || !strings.Contains(errs, "unrecognized option '--image-sise'") {
		t.Errorf("unknown option: %d %s", code, errs)
	}
	code, _, errs = runEnv(t, nil, "disk-image-create", "-t", "qcow2")
	if code != exitFailed || !strings.Contains(errs, "operating-system element") {
		t.Errorf("no element: %d %s", code, errs)
	}
	code, _, errs = runEnv(t, []string{"DIB_RELEASE=bookwrom"}, "disk-image-create", "--print-plan", "-t", "tar", "debian-minimal")
	if code != exitFailed || !strings.Contains(errs, `unknown release "bookwrom" of debian`) {
		t.Errorf("unknown release: %d %s", code, errs)
	}
	if code, _, errs = runEnv(t, []string{"DIB_RELEASE=bookwrom"}, "disk-image-create", "--print-plan", "--allow-unknown-release", "-t", "tar", "debian-minimal"); code != 0 {
		t.Errorf("--allow-unknown-release: %d %s", code, errs)
	}
	code, out, _ := runEnv(t, nil, "ramdisk-image-create", "--help")
	if code != 0 || !strings.HasPrefix(out, "Usage: ramdisk-image-create [OPTION]... ELEMENT...") || strings.Contains(out, "-p PKG") {
		t.Errorf("help: %d\n%s", code, out)
	}
	code, out, _ = runEnv(t, nil, "disk-image-create", "--version")
	if code != 0 || !strings.HasPrefix(out, "dib ") {
		t.Errorf("version: %d %s", code, out)
	}
	for argv0, want := range map[string][]string{
		"/usr/local/bin/disk-image-create": {"disk-image-create", "-x", "vm"},
		"ramdisk-image-create":             {"ramdisk-image-create", "-x", "vm"},
		"/usr/bin/dib":                     {"-x", "vm"},
	} {
		if got := programArgs([]string{argv0, "-x", "vm"}); !slices.Equal(got, want) {
			t.Errorf("programArgs(%s) = %q, want %q", argv0, got, want)
		}
	}
	if os.Geteuid() != 0 {
		code, _, errs = runEnv(t, nil, "disk-image-create", "-t", "tar", "debian-minimal")
		if code != exitFailed || !strings.Contains(errs, "building needs root") || !strings.Contains(errs, "--print-plan") {
			t.Errorf("not root: %d %s", code, errs)
		}
	}
}

// dibPlansForTest compiles a disk-image-create command line as runDIB does.
func dibPlansForTest(t *testing.T, environ, args []string) (*dibyaml.CommandLine, []*plan.Plan) {
	t.Helper()
	cl, err := dibyaml.ParseCommandLine(dibyaml.DiskImageCreate, args, environ)
	if err != nil {
		t.Fatal(err)
	}
	dibfile, ds := cl.Dibfile(dibyaml.DiskImageCreate)
	if ds.HasErrors() {
		t.Fatal(ds)
	}
	var errb bytes.Buffer
	g := &Globals{Stdout: &errb, Stderr: &errb, Environ: environ}
	plans, err := compileDibfile(g, dibfileName(dibyaml.DiskImageCreate), dibfile, PlanInput{})
	if err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	return cl, plans
}
