package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/runtime/chroot"
	"github.com/dibuild/dib/runtime/mount"
	"github.com/dibuild/dib/runtime/ns/nstest"
	"github.com/dibuild/dib/runtime/phase"
	"github.com/dibuild/dib/runtime/shell"
)

// Root tests run in a private mount namespace: a failure cannot leave a
// mount on the machine running them.
func TestMain(m *testing.M) {
	// The shared build's directory goes after the last test.
	nstest.MainThen(m, func() {
		if base.dir != "" {
			os.RemoveAll(base.dir)
		}
	})
}

// testCache keeps mmdebstrap's apt archives between test runs.
const testCache = "/var/cache/dib-test"

func requireIntegration(t *testing.T) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range []string{"mmdebstrap", "tar", "chroot"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
		t.Fatalf("integration test needs %s (DIB_REQUIRE_INTEGRATION=1)", strings.Join(missing, ", "))
	}
	t.Skipf("integration test needs %s", strings.Join(missing, ", "))
}

// planBuilder assembles a hand-written plan (the runtime may not import the
// compiler): a test element's files and phases.
type planBuilder struct{ p *plan.Plan }

func newPlan(name string) *planBuilder {
	return &planBuilder{p: &plan.Plan{ID: "integration-" + name,
		Image: plan.Image{Name: name, Family: "debian", Release: "bookworm", Arch: "amd64",
			Requested: []string{"test-element"}, Input: []string{"test-element"}},
		Elements:  []plan.Element{{Name: "test-element"}},
		Env:       []plan.EnvVar{{Name: "DIB_RELEASE", Value: "bookworm"}, {Name: "DISTRO_NAME", Value: "debian"}, {Name: "CALLER_VAR", Value: "caller"}},
		Blobs:     map[string][]byte{},
		HostTools: []plan.HostTool{{Program: "bash"}, {Program: "chroot"}, {Program: "mmdebstrap"}, {Program: "tar"}},
	}}
}

func (b *planBuilder) file(path, content string, mode uint32) {
	sum := sha256.Sum256([]byte(content))
	h := hex.EncodeToString(sum[:])
	b.p.Blobs[h] = []byte(content)
	b.p.Files = append(b.p.Files, plan.File{Path: path, Mode: mode, SHA256: h, Size: int64(len(content)), Element: "test-element"})
}

func (b *planBuilder) step(s plan.Step) { b.p.Steps = append(b.p.Steps, s) }

var dibPhases = []struct{ name, where string }{
	{"root.d", plan.Host}, {"extra-data.d", plan.Host}, {"pre-install.d", plan.Chroot}, {"install.d", plan.Chroot},
	{"packages", plan.Chroot},
	{"post-install.d", plan.Chroot}, {"post-root.d", plan.Host}, {"block-device.d", plan.Host},
	{"pre-finalise.d", plan.Host}, {"finalise.d", plan.Chroot}, {"cleanup.d", plan.Host},
}

// testElement is the hook tree of an element that checks, from inside its
// scripts, what DIB promises each phase.
func testElement(b *planBuilder, scripts map[string]string) {
	b.file("environment.d/10-test-element.bash", "export TEST_ELEMENT_ENV=sourced\n", 0o644)
	b.file("bin/test-helper", "#!/bin/sh\necho helper-ran\n", 0o755)
	b.file("bin/install-packages", "#!/bin/sh\nset -e\napt-get -q update >/dev/null\nDEBIAN_FRONTEND=noninteractive apt-get -q -y -o APT::Keep-Downloaded-Packages=true install --no-install-recommends \"$@\"\n", 0o755)
	b.file("static/sibling", "sibling-content\n", 0o644)
	for path, content := range scripts {
		b.file(path, content, 0o755)
	}
}

const checkLib = `
set -eu
ok() { echo "OK $*"; }
fail() { echo "FAIL $*" >&2; exit 1; }
[ "$TEST_ELEMENT_ENV" = sourced ] || fail environment.d not sourced
[ "$DIB_RELEASE" = bookworm ] && [ "$DISTRO_NAME" = debian ] && [ "${IMAGE_NAME##*/}" = "$EXPECT_IMAGE" ] && [ "${IMAGE_NAME#/}" != "$IMAGE_NAME" ] || fail DIB variables
[ "$ARCH" = amd64 ] || fail ARCH
[ "$(test-helper)" = helper-ran ] || fail bin not on PATH
[ "$(cat "$(dirname "$0")/../static/sibling")" = sibling-content ] || fail sibling via dirname
[ -n "$TMP_HOOKS_PATH" ] && [ -n "$TMP_BUILD_DIR" ] && [ "$TMP_MOUNT_PATH" = "$TMP_BUILD_DIR/mnt" ] || fail TMP_ variables
[ "${DIB_DEBUG_TRACE}" = 0 ] || fail DIB_DEBUG_TRACE
`

const hostCheck = checkLib + libCheck + `
# What disk-image-create exports to host hooks.
declare -F die > /dev/null || fail die is not exported to host hooks
# _ps4 is exported with PS4 (bash run as root drops an inherited PS4 from
# what it passes on, so PS4 is checked in TestComposeEnv only).
declare -F _ps4 > /dev/null || fail _ps4 is not exported
[ "$LC_ALL" = C ] && [ "$DIB_CHECKSUM" = 0 ] && [ "$DIB_MIN_TMPFS" = 2 ] && [ -n "$DIB_NO_TMPFS" ] || fail "LC_ALL/common-defaults"
[ "$FS_TYPE" = ext4 ] && [ "$IMAGE_TYPE" = qcow2 ] && [ -n "${ELEMENTS_PATH+x}" ] && [ -n "${OUT_IMAGE_PATH+x}" ] || fail img-defaults
[ "$DIB_LOCKFILES" = "$HOME/.cache/dib/lockfiles" ] || fail DIB_LOCKFILES
[ "$DIB_ARGS" = "-a amd64 -o $EXPECT_IMAGE -n test-element" ] || fail "DIB_ARGS=$DIB_ARGS"
eval "$DIB_ENV"; [ "$DIB_RELEASE" = bookworm ] || fail "DIB_ENV=$DIB_ENV"
[ -n "$TMP_IMAGE_DIR" ] && [ -n "$TMP_IMAGE_PATH" ] || fail TMP_IMAGE_
check_lib "$_LIB"
# element-info's map, as YAML and as the exported function; the
# block-device parameters file and the config it names.
declare -F get_image_element_array > /dev/null || fail get_image_element_array is not exported
eval "declare -A els=($(get_image_element_array))"
[ "${els[test-element]}" = "$TMP_BUILD_DIR/elements/test-element" ] && [ -x "${els[test-element]}/root.d/10-check" ] || fail "get_image_element_array: ${els[*]}"
[ "$IMAGE_ELEMENT_YAML" = "test-element: ${els[test-element]}"$'\n' ] || fail "IMAGE_ELEMENT_YAML=$IMAGE_ELEMENT_YAML"
[ "$DIB_BLOCK_DEVICE_PARAMS_YAML" = "$TMP_BUILD_DIR/block-device/params.yaml" ] || fail "DIB_BLOCK_DEVICE_PARAMS_YAML=$DIB_BLOCK_DEVICE_PARAMS_YAML"
grep -qx "build-dir: $TMP_BUILD_DIR" "$DIB_BLOCK_DEVICE_PARAMS_YAML" && grep -qx "mount-base: $TMP_BUILD_DIR/mnt" "$DIB_BLOCK_DEVICE_PARAMS_YAML" || fail params.yaml
grep -q "mount_point: /" "$(sed -n 's/^config: //p' "$DIB_BLOCK_DEVICE_PARAMS_YAML")" || fail block-device config.yaml
[ "$SKIP_BASE" = 1 ] && [ "$IMAGE_ELEMENT" = test-element ] || fail "SKIP_BASE/IMAGE_ELEMENT"
[ "$ELEMENTS_PATH" = "$TMP_BUILD_DIR/elements" ] || fail "ELEMENTS_PATH=$ELEMENTS_PATH"
[ "$DIB_PYTHON_EXEC" = "$(command -v python3 || true)" ] || fail "DIB_PYTHON_EXEC=$DIB_PYTHON_EXEC"
` + hostCheckTail

const hostCheckTail = `
[ "$TARGET_ROOT" = "$TMP_BUILD_DIR/mnt" ] || fail TARGET_ROOT
[ "$CALLER_VAR" = caller ] || fail caller variable
[ -r "$_LIB/die" ] && [ -r "$_LIB/img-functions" ] || fail _LIB
sudo true || fail sudo
# The shared apt cache is bound on the tree from root.d to finalise.d, never in cleanup.d.
if [ "$(basename "$(dirname "$0")")" = cleanup.d ]; then
    if grep -q " $TARGET_ROOT/var/cache/apt/archives " /proc/self/mountinfo; then fail apt cache bound in cleanup.d; fi
else
    grep -q " $TARGET_ROOT/var/cache/apt/archives " /proc/self/mountinfo || fail apt cache not bound
fi
ok host $(basename "$(dirname "$0")")
`

const chrootCheck = checkLib + libCheck + `
# In the chroot DIB's sudo drops exported functions; the lib files copied
# into the image (as ramdisk-base does) work there.
if declare -F die > /dev/null; then fail die exported into the chroot; fi
[ "$LC_ALL" = C ] && [ -n "$DIB_ARGS" ] && [ -z "${TARGET_ROOT:-}" ] || fail chroot variables
check_lib /tmp/dib-lib
if declare -F get_image_element_array > /dev/null; then fail get_image_element_array exported into the chroot; fi
[ "$IMAGE_ELEMENT_YAML" = "test-element: $(cat /tmp/in_target.d/element-dir)"$'\n' ] && [ -n "$DIB_BLOCK_DEVICE_PARAMS_YAML" ] || fail "chroot IMAGE_ELEMENT_YAML=$IMAGE_ELEMENT_YAML"
[ -r /proc/self/status ] || fail /proc not mounted
[ -d /sys/kernel ] || fail /sys not mounted
[ -c /dev/null ] || fail /dev not bound
[ -z "${TARGET_ROOT:-}" ] || fail TARGET_ROOT inside the chroot
[ "$(cat /etc/extra-data-marker)" = from-extra-data ] || fail extra-data.d wrote into TMP_MOUNT_PATH but the chroot does not see it
grep -q ' /dev/pts ' /proc/self/mountinfo || fail /dev/pts not mounted
grep -q ' /tmp/in_target.d ' /proc/self/mountinfo || fail in_target.d not mounted
if touch /tmp/in_target.d/write-test 2>/dev/null; then fail in_target.d writable; fi
[ "$(cat /tmp/in_target.d/extra-data-file)" = extra ] || fail extra-data not visible
[ "$0" = "/tmp/in_target.d/$(basename "$(dirname "$0")")/$(basename "$0")" ] || fail script path $0
set +e; /usr/sbin/policy-rc.d; rc=$?; set -e
[ $rc = 101 ] || fail policy-rc.d returned $rc
[ "$(cat /etc/resolv.conf)" = "$(cat /tmp/in_target.d/host-resolv)" ] || fail resolv.conf not the host one
grep -q ' /var/cache/apt/archives ' /proc/self/mountinfo || fail apt cache not bound
ok chroot $(basename "$(dirname "$0")")
`

// libFiles are DIB's lib/ files elements source; libFunctions the
// functions they define (checked defined after sourcing them all).
const libFiles = "die common-defaults img-defaults ramdisk-defaults common-functions img-functions ramdisk-functions"

const libFunctions = "die tmpfs_check mk_build_dir finish_image save_image copy_hooks_not_overwrite generate_hooks check_break " +
	"check_element eval_run_d _get_chroot_processes kill_chroot_processes cleanup_build_dir cleanup_image_dir run_d " +
	"_arg_defaults_hack arg_to_elements create_base mount_dev_pts_options mount_proc_dev_sys unmount_dir " +
	"block_device_create_config_file unmount_image trap_cleanup cleanup run_in_target run_d_in_target finalise_base " +
	"compress_and_save_image do_extra_package_install copy_elements_lib select_boot_kernel_initrd fullpath " +
	"create_ramdisk_base copy_required_libs populate_lib busybox_list populate_busybox populate_init finalise_image " +
	"populate_udev find_kernel_version"

// libCheck sources every $_LIB file (from LIBDIR) and runs what works in
// any phase: the defaults keep the build's values, select_boot_kernel_initrd
// on a fake Debian /boot, copy_required_libs of bash, fullpath, die's status.
const libCheck = `
check_lib() {
    local libdir=$1 f fn
    for f in ` + libFiles + `; do
        [ -r "$libdir/$f" ] || fail "no $f in $libdir"
    done
    ( _LIB=$libdir
      set +u
      for f in ` + libFiles + `; do source "$libdir/$f"; done
      set -u
      for fn in ` + libFunctions + `; do
          declare -F "$fn" > /dev/null || fail "$fn not defined by $libdir"
      done
      [ "$ARCH" = amd64 ] && [ "$IMAGE_NAME" != image ] && [ "$FS_TYPE" = ext4 ] && [ "$IMAGE_TYPE" = qcow2 ] || fail defaults overrode the build
      [ "$RAMDISK_ELEMENT" = ramdisk ] && [ -z "$MODULE_ROOT" ] || fail ramdisk-defaults
      fake=$(mktemp -d)
      mkdir -p "$fake/etc" "$fake/boot"
      touch "$fake/etc/debian_version" "$fake/boot/vmlinuz-6.1.0-1-amd64" "$fake/boot/vmlinuz-6.1.0-9-amd64" "$fake/boot/initrd.img-6.1.0-9-amd64"
      select_boot_kernel_initrd "$fake"
      [ "$KERNEL $RAMDISK" = "vmlinuz-6.1.0-9-amd64 initrd.img-6.1.0-9-amd64" ] || fail "select_boot_kernel_initrd: $KERNEL $RAMDISK"
      TMP_MOUNT_PATH=$fake/r
      mkdir -p "$TMP_MOUNT_PATH/lib"
      copy_required_libs /bin/bash
      ls "$TMP_MOUNT_PATH"/lib/libc.so.* > /dev/null || fail copy_required_libs
      [ "$(cd /tmp && fullpath x)" = /tmp/x ] || fail fullpath
      [ "$(_arg_defaults_hack vm x)" = "vm x block-device-mbr" ] || fail _arg_defaults_hack
      rm -rf "$fake"
      set +e; (false || die "expected death") > /dev/null; rc=$?; set -e
      [ $rc = 1 ] || fail "die exited $rc"
    ) || exit 1
}
`

func scriptsFor(extra map[string]string) map[string]string {
	s := map[string]string{
		"root.d/10-check": "#!/bin/bash\n" + hostCheck + `
[ -x "$TARGET_ROOT/usr/bin/apt-get" ] || fail no tree in TARGET_ROOT
readlink "$TARGET_ROOT/etc/resolv.conf" > "$TMP_BUILD_DIR/resolv-before" || echo file > "$TMP_BUILD_DIR/resolv-before"
`,
		"extra-data.d/10-check": "#!/bin/bash\n" + hostCheck + `
echo extra > "$TMP_HOOKS_PATH/extra-data-file"
# DIB builds the tree at TMP_MOUNT_PATH: what extra-data.d writes there is the image's.
[ -x "$TMP_MOUNT_PATH/usr/bin/apt-get" ] || fail no tree at TMP_MOUNT_PATH in extra-data.d
echo from-extra-data > "$TMP_MOUNT_PATH/etc/extra-data-marker"
# As ramdisk-base: DIB's lib files into the image, for chroot hooks.
mkdir -p "$TMP_MOUNT_PATH/tmp/dib-lib"
for f in ` + libFiles + `; do cp "$_LIB/$f" "$TMP_MOUNT_PATH/tmp/dib-lib/"; done
cat /etc/resolv.conf > "$TMP_HOOKS_PATH/host-resolv"
echo "$TMP_BUILD_DIR/elements/test-element" > "$TMP_HOOKS_PATH/element-dir"
`,
		"pre-install.d/10-check":  "#!/bin/bash\n" + chrootCheck,
		"install.d/10-check":      "#!/bin/bash\n" + chrootCheck + "echo installed > /etc/dib-test-marker\n",
		"post-install.d/10-check": "#!/bin/bash\n" + chrootCheck + "[ -x /usr/bin/hello ] || fail packages step did not install hello\n",
		"post-root.d/10-check":    "#!/bin/bash\n" + hostCheck + "[ -e \"$TMP_MOUNT_PATH/etc/dib-test-marker\" ] || fail marker\n",
		"block-device.d/10-check": "#!/bin/bash\n" + hostCheck,
		"pre-finalise.d/10-check": "#!/bin/bash\n" + hostCheck,
		"finalise.d/10-check":     "#!/bin/bash\n" + chrootCheck,
		"cleanup.d/10-check": "#!/bin/bash\n" + hostCheck + `
if grep -q " $TARGET_ROOT/proc " /proc/self/mountinfo; then fail /proc still mounted in cleanup.d; fi
[ ! -e "$TARGET_ROOT/usr/sbin/policy-rc.d" ] || fail policy-rc.d left
[ "$(readlink "$TARGET_ROOT/etc/resolv.conf" || echo file)" = "$(cat "$TMP_BUILD_DIR/resolv-before")" ] || fail resolv.conf not restored
`,
	}
	for k, v := range extra {
		s[k] = v
	}
	return s
}

// buildPlan is the full test plan: bootstrap, hooks, every phase with the
// test element's scripts, packages, manifests, tar output with checksums.
func buildPlan(name string, scripts map[string]string) *plan.Plan {
	b := newPlan(name)
	b.p.Env = append(b.p.Env, plan.EnvVar{Name: "EXPECT_IMAGE", Value: name})
	testElement(b, scripts)
	b.step(plan.Step{ID: "bootstrap", Kind: plan.KindBootstrap, Title: "bootstrap root filesystem", Where: plan.Host,
		Bootstrap: &plan.Bootstrap{Provider: "mmdebstrap", Family: "debian", Suite: "bookworm", Mirror: "http://deb.debian.org/debian",
			Variant: "minbase", Arch: "amd64", Available: true}})
	b.step(plan.Step{ID: "hooks", Kind: plan.KindHooks, Title: "write hook tree", Hooks: &plan.Hooks{}})
	for _, ph := range dibPhases {
		if ph.name == "packages" {
			b.step(plan.Step{ID: "packages", Kind: plan.KindPackages, Title: "install packages", Where: plan.Chroot, Packages: &plan.Packages{Names: []string{"hello"}}})
			continue
		}
		st := &plan.Phase{Name: ph.name, Where: ph.where,
			EnvironmentD: []plan.EnvFile{{Name: "10-test-element.bash", Element: "test-element", Path: "environment.d/10-test-element.bash"}}}
		var names []string
		for path := range scripts {
			if dir, n, _ := strings.Cut(path, "/"); dir == ph.name {
				names = append(names, n)
			}
		}
		sortStrings(names)
		for _, n := range names {
			st.Scripts = append(st.Scripts, plan.Script{Name: n, Element: "test-element", Path: ph.name + "/" + n})
		}
		b.step(plan.Step{ID: "phase-" + ph.name, Kind: plan.KindPhase, Title: "phase " + ph.name, Where: ph.where, Phase: st})
	}
	out := plan.Output{Format: "tar", Path: name + ".tar", Checksums: []string{"sha256"}}
	b.step(plan.Step{ID: "manifest", Kind: plan.KindManifest, Title: "write manifests", Manifest: &plan.Manifest{Dir: name + ".d"}})
	b.step(plan.Step{ID: "out-tar", Kind: plan.KindOutput, Title: "output tar", Output: &out})
	b.step(plan.Step{ID: "sum", Kind: plan.KindChecksum, Title: "checksum", Checksum: &plan.Checksum{Path: out.Path, Algorithms: out.Checksums}})
	b.p.Outputs = []plan.Output{out}
	return b.p
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// base is one real build (mmdebstrap through Apply), shared by the tests.
var base struct {
	once      sync.Once
	dir       string
	err       error
	bootstrap time.Duration
	total     time.Duration
	console   string
}

// sharedBuild runs the full test plan once per test binary.
func sharedBuild(t *testing.T) (outDir string) {
	t.Helper()
	base.once.Do(func() {
		base.dir, base.err = os.MkdirTemp("", "dib-integration-")
		if base.err != nil {
			return
		}
		var console strings.Builder
		start := time.Now()
		p := buildPlan("itest", scriptsFor(nil))
		base.err = Apply(context.Background(), p, Options{
			OutputDir: filepath.Join(base.dir, "out"), WorkDir: filepath.Join(base.dir, "work"),
			ImageCache: testCache, Console: &console,
			Observer: ObserverFunc(func(e Event) {
				if e.Type == StepFinished && e.Kind == plan.KindBootstrap {
					base.bootstrap = e.Duration
				}
			}),
		})
		base.total = time.Since(start)
		base.console = console.String()
	})
	if base.err != nil {
		t.Fatalf("shared build: %v\n%s", base.err, base.console)
	}
	t.Logf("shared build: mmdebstrap %s, whole build %s", base.bootstrap.Round(time.Millisecond), base.total.Round(time.Millisecond))
	return filepath.Join(base.dir, "out")
}

func TestIntegrationBuild(t *testing.T) {
	requireIntegration(t)
	out := sharedBuild(t)
	for _, ph := range dibPhases {
		if ph.name == "packages" {
			continue
		}
		want := fmt.Sprintf("test-element/10-check | OK %s %s", ph.where, ph.name)
		if !strings.Contains(base.console, want) {
			t.Errorf("no %q in the build output", want)
		}
	}
	tarPath := filepath.Join(out, "itest.tar")
	entries := readTarFile(t, tarPath)
	for _, want := range []string{"./usr/bin/apt-get", "./usr/bin/hello", "./etc/dib-test-marker", "./etc/extra-data-marker", "./proc/", "./sys/", "./etc/dib-manifests/dpkg_packages"} {
		if _, ok := entries[want]; !ok {
			t.Errorf("tar lacks %s", want)
		}
	}
	for name := range entries {
		if strings.HasPrefix(name, "./proc/") && name != "./proc/" || strings.HasPrefix(name, "./sys/") && name != "./sys/" ||
			strings.HasPrefix(name, "./tmp/in_target.d") || name == "./usr/sbin/policy-rc.d" || strings.HasPrefix(name, "./dev/pts/") && name != "./dev/pts/" {
			t.Errorf("tar holds %s", name)
		}
	}
	for name := range entries {
		if strings.HasPrefix(name, "./var/cache/apt/archives/") && strings.HasSuffix(name, ".deb") {
			t.Errorf("tar holds the downloaded package %s: the apt cache was not bound", name)
		}
	}
	if !strings.Contains(entries["./etc/dib-manifests/dpkg_packages"], "hello ") {
		t.Error("manifest lacks hello")
	}
	// The tree is a working Debian: unpack it and run apt-get in it.
	tree := t.TempDir()
	r := &shell.Runner{}
	if _, err := r.Run(context.Background(), shell.Command{Argv: []string{"tar", "-C", tree, "--numeric-owner", "-xpf", tarPath}}); err != nil {
		t.Fatal(err)
	}
	b, err := exec.Command("chroot", tree, "apt-get", "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(b), "apt ") {
		t.Errorf("apt-get --version in the unpacked tree: %v %s", err, b)
	}
	sum, _ := os.ReadFile(tarPath + ".sha256")
	if !strings.HasSuffix(string(sum), "  itest.tar\n") {
		t.Errorf("checksum file %q", sum)
	}
	noLeftovers(t, filepath.Join(base.dir, "work"))
	// The downloaded packages stay in the apt cache for the next build.
	debs, _ := filepath.Glob(filepath.Join(testCache, "apt", "debian-bookworm-amd64", "*.deb"))
	if len(debs) < 50 {
		t.Errorf("apt cache holds %d .deb files, want the whole minbase set", len(debs))
	}
	// … and so do the ones the packages step downloaded (into the cache, not the tree).
	if hello, _ := filepath.Glob(filepath.Join(testCache, "apt", "debian-bookworm-amd64", "hello_*.deb")); len(hello) == 0 {
		t.Error("the packages step's hello .deb is not in the apt cache")
	}
}

// TestIntegrationFailures makes a script fail in each kind of phase, after
// starting a daemon, and checks nothing is left behind.
func TestIntegrationFailures(t *testing.T) {
	requireIntegration(t)
	out := sharedBuild(t)
	treeTar := filepath.Join(out, "itest.tar")
	// Bootstrapping again per case would cost a minute: these builds have
	// no bootstrap and unpack the shared build's tree in root.d, as DIB's
	// root.d elements make the tree (the real bootstrap ran once). Without
	// mmdebstrap no apt cache is bound (AptCacheDir), so the phases run
	// only the failing script, not scriptsFor's checks, which expect it.
	unpack := "#!/bin/bash\nset -e\ntar -C \"$TARGET_ROOT\" --numeric-owner --xattrs --xattrs-include='*' -xpf " + treeTar + "\n"
	daemon := "setsid sleep 1000 >/dev/null 2>&1 </dev/null &\n"
	for _, ph := range []string{"root.d", "pre-install.d", "install.d", "post-root.d", "finalise.d", "cleanup.d"} {
		t.Run(ph, func(t *testing.T) {
			p := buildPlanWith(newPlan("fail").p, map[string]string{
				"root.d/05-unpack": unpack,
				ph + "/50-fail":    "#!/bin/bash\n" + daemon + "echo failing in " + ph + "\nexit 7\n",
			})
			for i := range p.Steps {
				if p.Steps[i].Bootstrap != nil {
					p.Steps[i].Bootstrap.Provider = "none"
				}
			}
			dir := t.TempDir()
			work, outDir := filepath.Join(dir, "work"), filepath.Join(dir, "out")
			err := Apply(context.Background(), p, Options{OutputDir: outDir, WorkDir: work, ImageCache: testCache})
			var pe *phase.Error
			if !errors.As(err, &pe) || pe.Phase != ph || pe.Script != "50-fail" || pe.Element != "test-element" {
				t.Fatalf("want a failure of %s/50-fail, got %v", ph, err)
			}
			if !strings.Contains(err.Error(), filepath.Join(outDir, "fail.log")) {
				t.Errorf("error does not name the log: %v", err)
			}
			ents, _ := os.ReadDir(outDir)
			var left []string
			for _, e := range ents {
				left = append(left, e.Name())
			}
			if !reflect.DeepEqual(left, []string{"fail.log"}) {
				t.Errorf("output dir holds %v", left)
			}
			noLeftovers(t, work)
		})
	}
}

// buildPlanWith replaces the plan's hook files with scripts' contents.
func buildPlanWith(p *plan.Plan, scripts map[string]string) *plan.Plan {
	q := buildPlan(p.Image.Name, scripts)
	q.Steps = deleteStep(q.Steps, "packages")
	return q
}

func deleteStep(steps []plan.Step, id string) []plan.Step {
	var out []plan.Step
	for _, s := range steps {
		if s.ID != id {
			out = append(out, s)
		}
	}
	return out
}

// noLeftovers checks a work directory holds no mount, no process and no file.
func noLeftovers(t *testing.T, work string) {
	t.Helper()
	if pts, err := mount.Under(work); err != nil || len(pts) > 0 {
		t.Errorf("mounts left under %s: %v %v", work, pts, err)
	}
	if pids := chroot.Inside(work); len(pids) > 0 {
		t.Errorf("processes left in %s: %v", work, pids)
	}
	if ents, _ := os.ReadDir(work); len(ents) > 0 {
		var n []string
		for _, e := range ents {
			n = append(n, e.Name())
		}
		t.Errorf("left in %s: %v", work, n)
	}
}
