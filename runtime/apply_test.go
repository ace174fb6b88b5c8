package runtime

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/compiler/plan/format"
	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/runtime/lib"
	"github.com/dibuild/dib/runtime/phase"
	"github.com/dibuild/dib/runtime/rootfs"
	"github.com/dibuild/dib/runtime/shell"
	"github.com/dibuild/dib/spec/diag"
)

// hostPlan is a plan that needs no root: no bootstrap, host phases only.
// root.d makes a tiny tree; the scripts record what they see.
func hostPlan(scripts map[string]string, order []string) *plan.Plan {
	p := &plan.Plan{ID: "plan-test", Image: plan.Image{Name: "img", Family: "debian", Release: "bookworm", Arch: "amd64"},
		Elements: []plan.Element{{Name: "base"}, {Name: "test-el"}},
		Env: []plan.EnvVar{{Name: "DIB_RELEASE", Value: "bookworm"}, {Name: "CALLER_VAR", Value: "from-dibfile"},
			{Name: "DIB_PASSWORD", Value: plan.Redacted, Secret: true}},
		Blobs: map[string][]byte{}}
	add := func(path, content string, mode uint32) {
		sum := sha256.Sum256([]byte(content))
		h := hex.EncodeToString(sum[:])
		p.Blobs[h] = []byte(content)
		p.Files = append(p.Files, plan.File{Path: path, Mode: mode, SHA256: h, Size: int64(len(content)), Element: "test-el"})
	}
	add("environment.d/10-test.bash", "export FROM_ENVD=yes\n", 0o644)
	add("bin/helper", "#!/bin/sh\necho helper-ok\n", 0o755)
	p.Steps = append(p.Steps,
		plan.Step{ID: "s-boot", Kind: plan.KindBootstrap, Title: "bootstrap", Bootstrap: &plan.Bootstrap{Provider: "none", Available: true}},
		plan.Step{ID: "s-hooks", Kind: plan.KindHooks, Title: "write hook tree", Hooks: &plan.Hooks{
			Generated: []plan.GeneratedFile{{Path: "dib-package-installs/install.d", Content: "install curl\n"}}}})
	phases := map[string]*plan.Phase{}
	var names []string
	for _, path := range order {
		ph, name, _ := strings.Cut(path, "/")
		add(path, scripts[path], 0o755)
		if phases[ph] == nil {
			phases[ph] = &plan.Phase{Name: ph, Where: plan.Host, EnvironmentD: []plan.EnvFile{{Name: "10-test.bash", Element: "test-el", Path: "environment.d/10-test.bash"}}}
			names = append(names, ph)
		}
		phases[ph].Scripts = append(phases[ph].Scripts, plan.Script{Name: name, Element: "test-el", Path: path})
	}
	for _, n := range names {
		p.Steps = append(p.Steps, plan.Step{ID: "s-" + n, Kind: plan.KindPhase, Title: "phase " + n, Where: plan.Host, Phase: phases[n]})
	}
	out := plan.Output{Format: "tar", Path: "img.tar", Checksums: []string{"sha256"}}
	p.Steps = append(p.Steps,
		plan.Step{ID: "s-man", Kind: plan.KindManifest, Title: "write manifests", Manifest: &plan.Manifest{Dir: "img.d"}},
		plan.Step{ID: "s-out", Kind: plan.KindOutput, Title: "output tar", Output: &out},
		plan.Step{ID: "s-sum", Kind: plan.KindChecksum, Title: "checksum", Checksum: &plan.Checksum{Path: "img.tar", Algorithms: []string{"sha256"}}})
	p.Outputs = []plan.Output{out}
	return p
}

const rootD = `#!/bin/bash
set -eu
mkdir -p "$TARGET_ROOT/etc" "$TARGET_ROOT/tmp" "$TARGET_ROOT/var/log"
echo built > "$TARGET_ROOT/etc/marker"
echo junk > "$TARGET_ROOT/tmp/junk"
echo logline > "$TARGET_ROOT/var/log/x.log"
{
  echo "TARGET_ROOT=$TARGET_ROOT"
  echo "TMP_HOOKS_PATH=$TMP_HOOKS_PATH"
  echo "IMAGE_NAME=$IMAGE_NAME DIB_RELEASE=$DIB_RELEASE ARCH=$ARCH DISTRO_NAME=$DISTRO_NAME"
  echo "IMAGE_ELEMENT=$IMAGE_ELEMENT"
  echo "FROM_ENVD=$FROM_ENVD CALLER_VAR=$CALLER_VAR"
  echo "PW=$DIB_PASSWORD"
  echo "helper=$(helper)"
  echo "pkgs=$(cat $TMP_HOOKS_PATH/dib-package-installs/install.d)"
  test -r "$_LIB/die" && echo lib-ok
} > "$TARGET_ROOT/etc/seen"
echo "the password is $DIB_PASSWORD"
`

func TestApplyHostOnly(t *testing.T) {
	requireGNUTar(t)
	// cleanup.d also finds each element's directory (get_image_element_array)
	// and the block-device parameters.
	check := "#!/bin/bash\nset -e\ntest -e \"$TARGET_ROOT/etc/marker\"\n" +
		"eval \"declare -A e=($(get_image_element_array))\"\ntest -x \"${e[test-el]}/root.d/10-make\"\n" +
		"grep -qx \"build-dir: $TMP_BUILD_DIR\" \"$DIB_BLOCK_DEVICE_PARAMS_YAML\"\n"
	p := hostPlan(map[string]string{"root.d/10-make": rootD, "cleanup.d/90-check": check},
		[]string{"root.d/10-make", "cleanup.d/90-check"})
	outDir, work := t.TempDir(), t.TempDir()
	var events []string
	var console strings.Builder
	err := Apply(context.Background(), p, Options{
		OutputDir: outDir, WorkDir: work, NoTmpfs: true, Console: &console,
		Secrets: map[string]string{"DIB_PASSWORD": "hunter2"},
		Observer: ObserverFunc(func(e Event) {
			events = append(events, e.Type+" "+e.Step+e.Element+"/"+e.Script)
		}),
		Getenv: func(string) string { return "" },
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, console.String())
	}
	if strings.Contains(console.String(), "hunter2") || !strings.Contains(console.String(), "test-el/10-make | the password is <redacted>") {
		t.Errorf("console %q", console.String())
	}
	entries := readTarFile(t, filepath.Join(outDir, "img.tar"))
	seen := entries["./etc/seen"]
	for _, want := range []string{"TMP_HOOKS_PATH=" + work, "IMAGE_NAME=" + filepath.Join(absPath(outDir), "img") + " DIB_RELEASE=bookworm ARCH=amd64 DISTRO_NAME=debian",
		"IMAGE_ELEMENT=base test-el", "FROM_ENVD=yes CALLER_VAR=from-dibfile", "PW=hunter2", "helper=helper-ok", "pkgs=install curl", "lib-ok"} {
		if !strings.Contains(seen, want) {
			t.Errorf("script saw %q; missing %q", seen, want)
		}
	}
	if entries["./etc/marker"] != "built\n" {
		t.Errorf("marker %q", entries["./etc/marker"])
	}
	if _, ok := entries["./tmp/junk"]; ok {
		t.Error("finalise_base did not empty /tmp")
	}
	if entries["./var/log/x.log"] != "" {
		t.Error("log not truncated")
	}
	if !strings.Contains(entries["./etc/dib-manifests/dib_environment"], `declare -x DIB_PASSWORD="<secret>"`) {
		t.Errorf("in-image manifest %q", entries["./etc/dib-manifests/dib_environment"])
	}
	for _, f := range []string{"img.tar", "img.tar.sha256", "img.d/dib_plan_id", "img.log"} {
		if _, err := os.Stat(filepath.Join(outDir, f)); err != nil {
			t.Error(err)
		}
	}
	if ents, _ := os.ReadDir(work); len(ents) != 0 {
		t.Errorf("work dir not cleaned: %v", ents)
	}
	want := []string{"build-started /", "step-started s-boot/", "step-finished s-boot/", "step-started s-hooks/", "step-finished s-hooks/",
		"step-started s-root.d/", "script-started s-root.dtest-el/10-make", "script-finished s-root.dtest-el/10-make", "step-finished s-root.d/",
		"step-started s-cleanup.d/", "script-started s-cleanup.dtest-el/90-check", "script-finished s-cleanup.dtest-el/90-check", "step-finished s-cleanup.d/",
		"step-started s-man/", "step-finished s-man/", "step-started s-out/", "step-finished s-out/", "step-started s-sum/", "step-finished s-sum/", "build-finished /"}
	if !reflect.DeepEqual(events, want) {
		t.Errorf("events\n%q\nwant\n%q", events, want)
	}
}

func TestApplyFailureLeavesNothing(t *testing.T) {
	requireGNUTar(t)
	for _, failAt := range []string{"root.d", "post-root.d", "cleanup.d"} {
		t.Run(failAt, func(t *testing.T) {
			scripts := map[string]string{"root.d/10-make": rootD, "post-root.d/10-ok": "#!/bin/sh\ntrue\n", "cleanup.d/10-ok": "#!/bin/sh\ntrue\n"}
			scripts[failAt+"/50-fail"] = "#!/bin/sh\necho failing now\nexit 3\n"
			order := []string{"root.d/10-make"}
			for _, ph := range []string{"root.d", "post-root.d", "cleanup.d"} {
				if ph != "root.d" {
					order = append(order, ph+"/10-ok")
				}
				if ph == failAt {
					order = append(order, ph+"/50-fail")
				}
			}
			p := hostPlan(scripts, order)
			outDir, work := t.TempDir(), t.TempDir()
			var failed []Event
			err := Apply(context.Background(), p, Options{OutputDir: outDir, WorkDir: work, NoTmpfs: true,
				Secrets: map[string]string{"DIB_PASSWORD": "x"}, Getenv: func(string) string { return "" },
				Observer: ObserverFunc(func(e Event) {
					if e.Type == StepFailed || e.Type == BuildFailed {
						failed = append(failed, e)
					}
				})})
			var se *StepError
			var pe *phase.Error
			if !errors.As(err, &se) || !errors.As(err, &pe) {
				t.Fatalf("want StepError wrapping phase.Error, got %v", err)
			}
			if se.Step != "s-"+failAt || pe.Phase != failAt || pe.Script != "50-fail" || pe.Element != "test-el" || pe.LogPath != filepath.Join(outDir, "img.log") {
				t.Errorf("error %+v / %+v", se, pe)
			}
			if len(failed) != 2 || failed[0].Step != "s-"+failAt || failed[1].Type != BuildFailed {
				t.Errorf("failure events %+v", failed)
			}
			log, _ := os.ReadFile(filepath.Join(outDir, "img.log"))
			if !strings.Contains(string(log), "test-el/50-fail | failing now") {
				t.Errorf("log lacks the script output:\n%s", log)
			}
			var left []string
			ents, _ := os.ReadDir(outDir)
			for _, e := range ents {
				left = append(left, e.Name())
			}
			if !reflect.DeepEqual(left, []string{"img.log"}) {
				t.Errorf("output dir holds %v", left)
			}
			if ents, _ := os.ReadDir(work); len(ents) != 0 {
				t.Errorf("work dir not cleaned: %v", ents)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	base := func() *plan.Plan { return hostPlan(map[string]string{}, nil) }
	tests := []struct {
		name   string
		mutate func(*plan.Plan, *Options)
		want   []string
	}{
		{"ok", func(p *plan.Plan, o *Options) {}, nil},
		{"provider not available", func(p *plan.Plan, o *Options) {
			p.Steps[0].Bootstrap = &plan.Bootstrap{Provider: "dnf", Family: "redhat", Available: false, Reason: "the dnf root-filesystem provider (redhat family) is not available in dib yet"}
		}, []string{"the dnf root-filesystem provider (redhat family) is not available in dib yet"}},
		{"dnf provider", func(p *plan.Plan, o *Options) {
			p.Steps[0].Bootstrap = &plan.Bootstrap{Provider: "dnf", Family: "redhat", Available: true, DNF: &plan.DNF{Distro: "centos"}}
		}, nil},
		{"dnf provider without its parameters", func(p *plan.Plan, o *Options) {
			p.Steps[0].Bootstrap = &plan.Bootstrap{Provider: "dnf", Family: "redhat", Available: true}
		}, []string{"the dnf root-filesystem provider is not available yet"}},
		{"zypper provider", func(p *plan.Plan, o *Options) {
			p.Steps[0].Bootstrap = &plan.Bootstrap{Provider: "zypper-minimal", Family: "suse", Available: true}
		}, []string{"the zypper-minimal root-filesystem provider is not available yet"}},
		{"unknown kind", func(p *plan.Plan, o *Options) {
			p.Steps = append(p.Steps, plan.Step{ID: "x", Kind: "filesystem", Title: "filesystem"})
		}, []string{`step kind "filesystem" (filesystem) is not supported by this dib runtime yet`}},
		{"disk step", func(p *plan.Plan, o *Options) {
			p.Steps = append(p.Steps, plan.Step{ID: "x", Kind: plan.KindPartition})
		}, nil},
		{"missing secret", func(p *plan.Plan, o *Options) { o.Secrets = nil }, []string{"secret variable DIB_PASSWORD has no value"}},
		{"secret from env", func(p *plan.Plan, o *Options) {
			o.Secrets = nil
			p.Env[2].FromEnv = "MY_PW"
			o.Getenv = func(k string) string {
				if k == "MY_PW" {
					return "pw"
				}
				return ""
			}
		}, nil},
		{"missing tool", func(p *plan.Plan, o *Options) {
			p.HostTools = []plan.HostTool{{Program: "dib-no-such-tool", Package: "dib-pkg"}}
		}, []string{"missing host tools: dib-no-such-tool"}},
		{"disk output", func(p *plan.Plan, o *Options) {
			p.Steps = append(p.Steps, plan.Step{ID: "q", Kind: plan.KindOutput, Output: &plan.Output{Format: "qcow2"}})
		}, nil},
		{"unknown output format", func(p *plan.Plan, o *Options) {
			p.Steps = append(p.Steps, plan.Step{ID: "x", Kind: plan.KindOutput, Output: &plan.Output{Format: "iso9660"}})
		}, []string{`unknown output format "iso9660"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base()
			o := Options{Secrets: map[string]string{"DIB_PASSWORD": "x"}, Getenv: func(string) string { return "" }}
			tt.mutate(p, &o)
			err := Check(p, o)
			var got []string
			var ds diag.Diagnostics
			if errors.As(err, &ds) {
				for _, d := range ds {
					got = append(got, d.Message)
				}
			} else if err != nil {
				t.Fatalf("not diagnostics: %v", err)
			}
			sort.Strings(got)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestComposeEnv(t *testing.T) {
	p := &plan.Plan{Image: plan.Image{Name: "n", Family: "ubuntu", Release: "noble", Arch: "arm64"},
		Elements: []plan.Element{{Name: "a"}, {Name: "b"}},
		Env: []plan.EnvVar{{Name: "DIB_DEBUG_TRACE", Value: "1"}, {Name: "TARGET_ROOT", Value: "/evil"}, {Name: "TMPDIR", Value: "/scratch"},
			{Name: "TOKEN", Value: plan.Redacted, Secret: true, FromEnv: "CI_TOKEN"}}}
	getenv := func(k string) string {
		return map[string]string{"HOME": "/home/u", "CI_TOKEN": "t0k", "SECRET_HOST_THING": "no"}[k]
	}
	host, chroot, secrets, err := composeEnv(p, getenv, nil, envLayout{
		Workspace: []string{"TARGET_ROOT=/b/mnt", "TMP_BUILD_DIR=/b"}, HooksPath: "/b/hooks", LibDir: "/b/dib/lib", BinDir: "/b/dib/bin", ImageCache: "/c", DebugTrace: 2, ImagePath: "/out/n", ManifestDir: "/out/n.d", NoTmpfs: true, Home: "/home/u",
		ElementDirs: []plan.ElementDir{{Name: "b", Dir: "/b/elements/b"}, {Name: "a", Dir: "/e/a"}}, BlockDeviceParams: "/b/block-device/params.yaml", PythonExec: "/usr/bin/python3", BuiltinElements: "/b/elements"})
	if err != nil {
		t.Fatal(err)
	}
	die, _ := lib.Function("die")
	dibVars := []string{"DIB_ARGS=-a arm64 -o n -n", "DIB_BLOCK_DEVICE_PARAMS_YAML=/b/block-device/params.yaml", "DIB_BOOT_LABEL=", "DIB_CHECKSUM=0", "DIB_DEBUG_TRACE=2", "DIB_DEFAULT_INSTALLTYPE=source", `DIB_ENV=declare -x DIB_DEBUG_TRACE="1"`, "DIB_IMAGE_CACHE=/c",
		"DIB_LOCKFILES=/home/u/.cache/dib/lockfiles", "DIB_MANIFEST_SAVE_DIR=/out/n.d/", "DIB_MIN_TMPFS=2", "DIB_MOUNTPOINTS=/", "DIB_NO_TMPFS=1", "DIB_OFFLINE=", "DIB_PYTHON_EXEC=/usr/bin/python3",
		"DIB_RELEASE=noble", "DIB_ROOT_FSTYPE=ext4", "DIB_ROOT_LABEL=cloudimg-rootfs", "DISTRO_NAME=ubuntu", "ELEMENTS_PATH=/b/elements", "FS_TYPE=ext4"}
	wantHost := append(append([]string{"ARCH=arm64", `BASH_FUNC__ps4%%=() {  local c; c=($(caller 0)); printf '%-80s ' "${c[2]}:${c[1]}:${c[0]}"` + "\n}",
		"BASH_FUNC_die%%=" + die, "BASH_FUNC_get_image_element_array%%=() {  echo \"[b]=/b/elements/b [a]=/e/a \"\n}"}, dibVars...),
		"HOME=/home/u", "IMAGE_ELEMENT=a b", "IMAGE_ELEMENT_YAML=a: /e/a\nb: /b/elements/b\n", "IMAGE_NAME=/out/n", "IMAGE_TYPE=qcow2", "LC_ALL=C", "OUT_IMAGE_PATH=",
		"PATH=/b/hooks/bin:/b/dib/bin:"+SystemPath, "PS4=+ $(_ps4):   ", "SKIP_BASE=1", "TARGET_ROOT=/b/mnt", "TMPDIR=/scratch", "TMP_BUILD_DIR=/b", "TOKEN=t0k", "_LIB=/b/dib/lib")
	if !reflect.DeepEqual(host, wantHost) {
		t.Errorf("host env\n%q\nwant\n%q", host, wantHost)
	}
	wantChroot := append(append([]string{"ARCH=arm64"}, dibVars...), "HOME=/root", "IMAGE_ELEMENT=a b", "IMAGE_ELEMENT_YAML=a: /e/a\nb: /b/elements/b\n", "IMAGE_NAME=/out/n", "IMAGE_TYPE=qcow2", "LC_ALL=C", "OUT_IMAGE_PATH=",
		"PATH=/tmp/in_target.d/bin:"+SystemPath, "SKIP_BASE=1", "TMP_BUILD_DIR=/b", "TOKEN=t0k", "_LIB=/b/dib/lib")
	if !reflect.DeepEqual(chroot, wantChroot) {
		t.Errorf("chroot env\n%q\nwant\n%q", chroot, wantChroot)
	}
	if !reflect.DeepEqual(secrets, []string{"t0k"}) {
		t.Errorf("secrets %q", secrets)
	}
}

func TestDpkgPackages(t *testing.T) {
	f := filepath.Join(t.TempDir(), "status")
	os.WriteFile(f, []byte("Package: zlib1g\nStatus: install ok installed\nVersion: 1.2\nArchitecture: amd64\nDescription: x\n more\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: apt\nStatus: install ok installed\nVersion: 2.6.1\nArchitecture: amd64\n"), 0o644)
	got, err := dpkgPackages(f)
	if err != nil || string(got) != "apt 2.6.1 amd64\nzlib1g 1.2 amd64\n" {
		t.Errorf("got %q %v", got, err)
	}
	if got, err := dpkgPackages(filepath.Join(t.TempDir(), "none")); err != nil || got != nil {
		t.Errorf("absent: %q %v", got, err)
	}
}

func readTarFile(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	m := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return m
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		m[h.Name] = string(b)
	}
}

func requireGNUTar(t *testing.T) {
	t.Helper()
	out, err := execOutput("tar", "--version")
	if err == nil && strings.Contains(out, "GNU tar") {
		return
	}
	if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
		t.Fatal("GNU tar is required")
	}
	t.Skip("GNU tar not available")
}

func TestBootstrapOptionsUbuntuNoble(t *testing.T) {
	bs := &plan.Bootstrap{Provider: "mmdebstrap", Family: "ubuntu", Suite: "noble", Mirror: "http://archive.ubuntu.com/ubuntu",
		Components: []string{"main", "universe"}, Variant: "minbase", Keyrings: []string{"/usr/share/keyrings/ubuntu-archive-keyring.gpg"},
		Arch: "amd64", Available: true}
	o, err := bootstrapOptions(bs, "/root/.cache/image-create", "/tmp/dib_build.1/built")
	if err != nil {
		t.Fatal(err)
	}
	argv, err := rootfs.Argv(o)
	if err != nil {
		t.Fatal(err)
	}
	want := "mmdebstrap --mode=root --format=directory --variant=minbase --architectures=amd64 --components=main,universe " +
		"--keyring=/usr/share/keyrings/ubuntu-archive-keyring.gpg --aptopt=DPkg::Options::=--force-unsafe-io " +
		"--skip=download/empty --skip=essential/unlink " +
		`'--setup-hook=mkdir -p "$1"/var/cache/apt/archives && mount -o bind '\''/root/.cache/image-create/apt/ubuntu-noble-amd64'\'' "$1"/var/cache/apt/archives' ` +
		`'--customize-hook=umount "$1"/var/cache/apt/archives' noble /tmp/dib_build.1/built http://archive.ubuntu.com/ubuntu`
	if got := shell.Quote(argv); got != want {
		t.Errorf("argv\n%s\nwant\n%s", got, want)
	}
}

// TestApplyCancelled interrupts a build in the middle of a script, as
// SIGINT does: the script is stopped, and the cleanup still runs.
func TestApplyCancelled(t *testing.T) {
	requireGNUTar(t)
	p := hostPlan(map[string]string{"root.d/10-make": rootD, "post-root.d/10-slow": "#!/bin/sh\necho started\nsleep 60\n"},
		[]string{"root.d/10-make", "post-root.d/10-slow"})
	outDir, work := t.TempDir(), t.TempDir()
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	start := time.Now()
	err := Apply(ctx, p, Options{OutputDir: outDir, WorkDir: work, NoTmpfs: true,
		Secrets: map[string]string{"DIB_PASSWORD": "x"}, Getenv: func(string) string { return "" },
		Observer: ObserverFunc(func(e Event) {
			if e.Type == ScriptStarted && e.Script == "10-slow" {
				go func() { time.Sleep(200 * time.Millisecond); cancel(Signal{Name: "SIGTERM"}) }()
			}
		})})
	// The message names the signal and the step, not the killed script's
	// "exit status -1".
	var ie *InterruptedError
	if !errors.As(err, &ie) || !errors.Is(err, Signal{Name: "SIGTERM"}) ||
		err.Error() != `build interrupted by SIGTERM during step "phase post-root.d"; what it made was cleaned up` {
		t.Fatalf("want an interruption by SIGTERM, got %v", err)
	}
	if time.Since(start) > 30*time.Second {
		t.Error("the script was not stopped")
	}
	if ents, _ := os.ReadDir(work); len(ents) != 0 {
		t.Errorf("work dir not cleaned: %v", ents)
	}
	if _, err := os.Stat(filepath.Join(outDir, "img.tar")); err == nil {
		t.Error("output written")
	}
}

// TestDibArgsAndEnv: DIB_ARGS is the disk-image-create command line of the
// plan; DIB_ENV is `declare -p` of the DIB_* variables the Dibfile gave,
// bash-quoted, secrets redacted, environment.d values and defaults left out.
func TestDibArgsAndEnv(t *testing.T) {
	p := &plan.Plan{Image: plan.Image{Name: "vm", Arch: "amd64", Requested: []string{"debian-minimal", "vm"}, Input: []string{"base", "debian-minimal", "vm"}},
		Outputs: []plan.Output{{Format: "qcow2"}, {Format: "raw"}, {Format: "qcow2"}},
		Env: []plan.EnvVar{
			{Name: "DIB_RELEASE", Value: "bookworm", Origin: plan.Origin{Kind: "dibfile", Line: 3}},
			{Name: "DIB_X", Value: `a "b" $c \d`, Origin: plan.Origin{Kind: "dibfile", Line: 4}},
			{Name: "DIB_DEV_USER_PASSWORD", Value: plan.Redacted, Secret: true, Origin: plan.Origin{Kind: "dibfile", Line: 5}},
			{Name: "DIB_INIT_SYSTEM", Value: "systemd", Origin: plan.Origin{Kind: plan.OriginEnvironmentD}},
			{Name: "DIB_DEBUG_TRACE", Value: "0", Origin: plan.Origin{Kind: "default"}},
			{Name: "OTHER", Value: "x", Origin: plan.Origin{Kind: "dibfile", Line: 6}},
		}}
	if got, want := dibArgs(p), "-a amd64 -o vm debian-minimal vm"; got != want {
		t.Errorf("DIB_ARGS %q, want %q", got, want)
	}
	want := "declare -x DIB_DEV_USER_PASSWORD=\"<secret>\"\ndeclare -x DIB_RELEASE=\"bookworm\"\ndeclare -x DIB_X=\"a \\\"b\\\" \\$c \\\\d\""
	if got := dibEnv(p); got != want {
		t.Errorf("DIB_ENV\n%s\nwant\n%s", got, want)
	}
	// bash reads it back to the same values.
	out, err := exec.Command("bash", "-c", dibEnv(p)+"\nprintf '%s|' \"$DIB_X\" \"$DIB_RELEASE\"").Output()
	if err != nil || string(out) != `a "b" $c \d|bookworm|` {
		t.Errorf("bash reads %q %v", out, err)
	}
	p.Image.Ramdisk, p.Image.Input = true, []string{"ramdisk", "debian-minimal"}
	if got := dibArgs(p); !strings.Contains(got, " -n ") || ramdiskElement(p) != "ramdisk" {
		t.Errorf("ramdisk: %q %q", got, ramdiskElement(p))
	}
}

// TestBlockDeviceValues: DIB_ROOT_LABEL, DIB_ROOT_FSTYPE, DIB_BOOT_LABEL and
// DIB_MOUNTPOINTS come from the layout's getval, or DIB's fallback config.
func TestBlockDeviceValues(t *testing.T) {
	p := &plan.Plan{Env: []plan.EnvVar{{Name: "FS_TYPE", Value: "xfs"}}}
	if gv := blockDeviceValues(p); gv.RootLabel != "img-rootfs" || gv.RootFSType != "xfs" || gv.MountPoints != "/" || gv.BootLabel != "" {
		t.Errorf("fallback xfs: %+v", gv)
	}
	p.Env = append(p.Env, plan.EnvVar{Name: "DIB_ROOT_LABEL", Value: "mine"})
	if gv := blockDeviceValues(p); gv.RootLabel != "mine" {
		t.Errorf("root-label: %+v", gv)
	}
	want := layout.GetVal{RootLabel: "cloudimg-rootfs", RootFSType: "ext4", BootLabel: "BOOT", MountPoints: "/|/boot|/boot/efi"}
	p.Steps = []plan.Step{{Kind: plan.KindPartition, Partition: &plan.Partition{Layout: &layout.Layout{GetVal: want}}}}
	if gv := blockDeviceValues(p); gv.RootLabel != want.RootLabel || gv.BootLabel != "BOOT" || gv.MountPoints != want.MountPoints {
		t.Errorf("layout: %+v", gv)
	}
}

// TestEveryTreeFormatHasAWriter: the runtime writes every tree format of
// the format table itself (the disk formats go to writeDiskOutput).
func TestEveryTreeFormatHasAWriter(t *testing.T) {
	b := &Build{}
	for _, f := range format.All() {
		got := b.treeWriter(&plan.Output{Format: f.Name}) != nil
		if got != (f.Source == format.Tree) {
			t.Errorf("format %s (source %s): tree writer %v", f.Name, f.Source, got)
		}
	}
}
