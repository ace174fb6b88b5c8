package elements

import (
	"archive/tar"
	"compress/gzip"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// hooksTree writes the named elements merged into one directory, the way
// DIB's generate_hooks (and dib's runtime) merges them into
// $TMP_HOOKS_PATH, with the modes FS reports. It returns its path.
func hooksTree(t *testing.T, names ...string) string {
	t.Helper()
	requireTool(t, "bash")
	dir := filepath.Join(t.TempDir(), "hooks")
	fsys := FS()
	for _, name := range names {
		err := fs.WalkDir(fsys, name, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel := strings.TrimPrefix(strings.TrimPrefix(p, name), "/")
			dst := filepath.Join(dir, filepath.FromSlash(rel))
			if d.IsDir() {
				return os.MkdirAll(dst, 0o755)
			}
			if rel == "README.md" {
				return nil
			}
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			return os.WriteFile(dst, b, fi.Mode().Perm())
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func writeFile(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fakeCommand puts an executable NAME in bin that appends its arguments
// (one call per line) to bin/NAME.log and then runs extra.
func fakeCommand(t *testing.T, bin, name, extra string) string {
	t.Helper()
	log := filepath.Join(bin, name+".log")
	writeFile(t, filepath.Join(bin, name), "#!/bin/bash\necho \"$*\" >> '"+log+"'\n"+extra+"\n", 0o755)
	return log
}

type run struct {
	out  string
	code int
}

// runScript runs script with a small clean environment plus env.
func runScript(t *testing.T, script string, env map[string]string, args ...string) run {
	t.Helper()
	cmd := exec.Command(script, args...)
	base := map[string]string{
		"PATH":   os.Getenv("PATH"),
		"HOME":   t.TempDir(),
		"LC_ALL": "C",
	}
	for k, v := range env {
		base[k] = v
	}
	var keys []string
	for k := range base {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+base[k])
	}
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("%s: %v", script, err)
		}
		code = ee.ExitCode()
	}
	return run{out: string(out), code: code}
}

func TestPkgMapHelper(t *testing.T) {
	hooks := hooksTree(t, "pkg-map")
	writeFile(t, filepath.Join(hooks, "dib-pkg-map", "base"),
		"iscsi_package\topen-iscsi\ndropped\t\nmulti\tgrub-efi grub-pc-bin", 0o644)
	bin := filepath.Join(hooks, "bin", "pkg-map")
	env := map[string]string{"TMP_HOOKS_PATH": hooks}
	tests := []struct {
		name string
		args []string
		want string
		code int
	}{
		{"mapped", []string{"--element", "base", "iscsi_package"}, "open-iscsi\n", 0},
		{"dropped", []string{"--element", "base", "dropped"}, "", 0},
		{"several names", []string{"--element", "base", "multi", "iscsi_package"}, "grub-efi grub-pc-bin\nopen-iscsi\n", 0},
		{"unknown name unchanged", []string{"--element", "base", "--missing-ok", "curl"}, "curl\n", 0},
		{"prefix", []string{"--element=base", "--prefix", "P:", "iscsi_package"}, "P:open-iscsi\n", 0},
		{"no map", []string{"--element", "nope", "x"}, "", 2},
		{"no map, missing ok", []string{"--element", "nope", "--missing-ok", "x", "y"}, "x\ny\n", 0},
		{"no element", []string{"x"}, "", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "TMP_HOOKS_PATH=" + env["TMP_HOOKS_PATH"]}
			out, err := cmd.Output()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || string(out) != tc.want {
				t.Errorf("pkg-map %v = %q (exit %d), want %q (exit %d)", tc.args, out, code, tc.want, tc.code)
			}
		})
	}
}

func TestPackageInstallsHooks(t *testing.T) {
	hooks := hooksTree(t, "package-installs", "pkg-map")
	fake := t.TempDir()
	log := fakeCommand(t, fake, "install-packages", "")
	env := map[string]string{
		"TMP_HOOKS_PATH": hooks,
		"PATH":           fake + ":" + filepath.Join(hooks, "bin") + ":" + os.Getenv("PATH"),
	}
	writeFile(t, filepath.Join(hooks, "dib-package-installs", "install.d"),
		"install linux-image-amd64\ninstall netbase\nuninstall nano\n# comment\n\ninstall open-iscsi", 0o644)
	writeFile(t, filepath.Join(hooks, "dib-package-installs", "pre-install.d"), "install lsb-release\n", 0o644)

	steps := []struct {
		hook string
		want string
	}{
		{"pre-install.d/10-package-installs", "lsb-release\n"},
		{"pre-install.d/99-package-uninstalls", ""},
		{"install.d/01-package-installs", "linux-image-amd64 netbase open-iscsi\n"},
		{"install.d/99-package-uninstalls", "-e nano\n"},
		{"post-install.d/00-package-installs", ""}, // no list for this phase
		{"post-install.d/95-package-uninstalls", ""},
	}
	for _, s := range steps {
		t.Run(s.hook, func(t *testing.T) {
			os.Remove(log)
			r := runScript(t, filepath.Join(hooks, s.hook), env)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.out)
			}
			got, _ := os.ReadFile(log)
			if string(got) != s.want {
				t.Errorf("install-packages called with %q, want %q", got, s.want)
			}
		})
	}

	t.Run("bad line", func(t *testing.T) {
		writeFile(t, filepath.Join(hooks, "dib-package-installs", "post-install.d"), "frobnicate x\n", 0o644)
		r := runScript(t, filepath.Join(hooks, "post-install.d/00-package-installs"), env)
		if r.code == 0 || !strings.Contains(r.out, "unknown action") {
			t.Errorf("want a failure naming the bad action, got exit %d: %s", r.code, r.out)
		}
	})
	t.Run("v2 command line", func(t *testing.T) {
		os.Remove(log)
		r := runScript(t, filepath.Join(hooks, "bin/package-installs-v2"), env, "--phase", "install.d", "/some/file.json")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.out)
		}
		if got := readFile(t, log); got != "linux-image-amd64 netbase open-iscsi\n" {
			t.Errorf("got %q", got)
		}
	})
}

func TestInstallPackages(t *testing.T) {
	hooks := hooksTree(t, "dpkg", "pkg-map")
	writeFile(t, filepath.Join(hooks, "dib-pkg-map", "bootloader"), "dib-grub-bios\tgrub-pc-bin\ngone\t\n", 0o644)
	fake := t.TempDir()
	aptLog := fakeCommand(t, fake, "apt-get", "")
	// dpkg-query: only "installed-pkg" is installed.
	fakeCommand(t, fake, "dpkg-query", `for a; do last=$a; done; [ "$last" = installed-pkg ] && echo "install ok installed"; exit 0`)
	env := map[string]string{
		"TMP_HOOKS_PATH": hooks,
		"PATH":           fake + ":" + filepath.Join(hooks, "bin") + ":" + os.Getenv("PATH"),
	}
	ip := filepath.Join(hooks, "bin", "install-packages")
	lastInstall := func() string {
		lines := strings.Split(strings.TrimSpace(readFile(t, aptLog)), "\n")
		return lines[len(lines)-1]
	}
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		contains []string
		absent   []string
		noCall   bool
		fails    bool
	}{
		{name: "install", args: []string{"a", "b"},
			contains: []string{"APT::Install-Recommends=false", "--force-confold", "install a b", "Keep-Downloaded-Packages=true"}},
		{name: "mapped", args: []string{"-m", "bootloader", "dib-grub-bios", "gone"},
			contains: []string{"install grub-pc-bin"}, absent: []string{"gone"}},
		{name: "remove skips absent", args: []string{"-e", "installed-pkg", "absent-pkg"},
			contains: []string{"remove installed-pkg"}, absent: []string{"absent-pkg"}},
		{name: "remove nothing installed", args: []string{"-e", "absent-pkg"}, noCall: true},
		{name: "upgrade", args: []string{"-u"}, contains: []string{"dist-upgrade"}},
		{name: "upgrade avoided", args: []string{"-u"}, env: map[string]string{"DIB_AVOID_PACKAGES_UPDATE": "1"}, noCall: true},
		{name: "no upgrade of installed", args: []string{"x"}, env: map[string]string{"DIB_AVOID_PACKAGES_UPDATE": "1"},
			contains: []string{"--no-upgrade", "install x"}},
		{name: "no cache", args: []string{"x"}, env: map[string]string{"DIB_APT_LOCAL_CACHE": "0"},
			absent: []string{"Keep-Downloaded"}},
		{name: "download", args: []string{"-d", "x"}, contains: []string{"--download-only"}},
		{name: "refused on the host", args: []string{"x"}, env: map[string]string{"TARGET_ROOT": "/tmp/some-image"}, fails: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(aptLog)
			e := map[string]string{}
			for k, v := range env {
				e[k] = v
			}
			for k, v := range tc.env {
				e[k] = v
			}
			r := runScript(t, ip, e, tc.args...)
			if tc.fails {
				if r.code == 0 || !strings.Contains(r.out, "chroot") {
					t.Errorf("want a refusal, got exit %d: %s", r.code, r.out)
				}
				if _, err := os.Stat(aptLog); err == nil {
					t.Error("apt-get was called")
				}
				return
			}
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.out)
			}
			if tc.noCall {
				if b, err := os.ReadFile(aptLog); err == nil && strings.Contains(string(b), "install") {
					t.Errorf("apt-get was called: %s", b)
				}
				return
			}
			got := lastInstall()
			for _, c := range tc.contains {
				if !strings.Contains(got, c) {
					t.Errorf("apt-get %q lacks %q", got, c)
				}
			}
			for _, c := range tc.absent {
				if strings.Contains(got, c) {
					t.Errorf("apt-get %q has %q", got, c)
				}
			}
		})
	}
}

func TestElementInfoStub(t *testing.T) {
	hooks := hooksTree(t, "base")
	ei := filepath.Join(hooks, "bin/element-info")
	env := map[string]string{"IMAGE_ELEMENT": "base vm debian-minimal"}
	if r := runScript(t, ei, env, "--expanded-output"); r.code != 0 || r.out != "base vm debian-minimal\n" {
		t.Errorf("--expanded-output = %q (exit %d)", r.out, r.code)
	}
	if r := runScript(t, ei, env, "--env"); r.code != 0 || r.out != "export IMAGE_ELEMENT=base\\ vm\\ debian-minimal\nexport IMAGE_ELEMENT_YAML=''\n" {
		t.Errorf("--env = %q (exit %d)", r.out, r.code)
	}
	// With the build's map (the function as the runtime exports it), the
	// output evaluates back to the same variables and function.
	env["IMAGE_ELEMENT_YAML"] = "base: /b/base\nvm: /b/vm\n"
	env["BASH_FUNC_get_image_element_array%%"] = "() {  echo \"[vm]=/b/vm [base]=/b/base \"\n}"
	r := runScript(t, ei, env, "--env")
	check := filepath.Join(t.TempDir(), "check")
	writeFile(t, check, "#!/bin/bash\nset -eu\nunset -f get_image_element_array\neval \"$(cat)\"\n"+
		"eval declare -A a=($(get_image_element_array))\necho \"$IMAGE_ELEMENT|${a[vm]}|${a[base]}|$IMAGE_ELEMENT_YAML\"\n", 0o755)
	cmd := exec.Command(check)
	cmd.Stdin = strings.NewReader(r.out)
	out, err := cmd.CombinedOutput()
	if want := "base vm debian-minimal|/b/vm|/b/base|base: /b/base\nvm: /b/vm\n\n"; err != nil || string(out) != want {
		t.Errorf("--env evaluated: %q %v, want %q\n%s", out, err, want, r.out)
	}
	if r := runScript(t, ei, env, "vm"); r.code == 0 {
		t.Errorf("resolving elements at build time should fail")
	}
}

func TestSvcMap(t *testing.T) {
	hooks := hooksTree(t, "svc-map")
	writeFile(t, filepath.Join(hooks, "dib-svc-map"), "mysql\tmariadb\napache2\thttpd\n", 0o644)
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "lib/systemd/system/apache2.service"), "", 0o644)
	r := runScript(t, filepath.Join(hooks, "bin/svc-map"),
		map[string]string{"TMP_HOOKS_PATH": hooks, "DIB_SVC_MAP_ROOT": root}, "mysql", "apache2", "other")
	if r.code != 0 || r.out != "mariadb\napache2\nother\n" {
		t.Errorf("svc-map = %q (exit %d)", r.out, r.code)
	}
	// Without a resolved map: the image's /usr/share/svc-map/services.
	writeFile(t, filepath.Join(root, "usr/share/svc-map/services"), "mysql: mysqld\n", 0o644)
	r = runScript(t, filepath.Join(hooks, "bin/svc-map"),
		map[string]string{"DIB_SVC_MAP_FILE": "/nonexistent", "DIB_SVC_MAP_ROOT": root}, "mysql")
	if r.out != "mysqld\n" {
		t.Errorf("svc-map from services file = %q", r.out)
	}
}

func TestDibInitSystem(t *testing.T) {
	hooks := hooksTree(t, "dib-init-system")
	tests := []struct {
		files []string
		want  string
		code  int
	}{
		{[]string{"usr/bin/systemctl", "sbin/init"}, "systemd\n", 0},
		{[]string{"bin/systemctl"}, "systemd\n", 0},
		{[]string{"sbin/initctl", "sbin/init"}, "upstart\n", 0},
		{[]string{"sbin/openrc", "sbin/init"}, "openrc\n", 0},
		{[]string{"sbin/init"}, "sysv\n", 0},
		{nil, "", 1},
	}
	for _, tc := range tests {
		t.Run(strings.TrimSpace(tc.want)+"/"+strings.Join(tc.files, ","), func(t *testing.T) {
			root := t.TempDir()
			for _, f := range tc.files {
				writeFile(t, filepath.Join(root, f), "", 0o755)
			}
			cmd := exec.Command(filepath.Join(hooks, "bin/dib-init-system"), root)
			out, err := cmd.Output()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			if string(out) != tc.want || code != tc.code {
				t.Errorf("got %q exit %d, want %q exit %d", out, code, tc.want, tc.code)
			}
			if tc.code != 0 {
				return
			}
			// environment.d exports the same value, read from $TARGET_ROOT.
			src := "source " + filepath.Join(hooks, "environment.d/99-dib-init-system") + "; echo \"$DIB_INIT_SYSTEM\""
			env := exec.Command("bash", "-c", src)
			env.Env = []string{"PATH=" + os.Getenv("PATH"), "TARGET_ROOT=" + root}
			os.MkdirAll(filepath.Join(root, "etc"), 0o755)
			got, err := env.Output()
			if err != nil || string(got) != tc.want {
				t.Errorf("environment.d: DIB_INIT_SYSTEM=%q (%v), want %q", got, err, tc.want)
			}
		})
	}
}

func TestDibRunParts(t *testing.T) {
	hooks := hooksTree(t, "base")
	dir := filepath.Join(t.TempDir(), "phase")
	log := filepath.Join(t.TempDir(), "log")
	script := func(name, body string, mode os.FileMode) {
		writeFile(t, filepath.Join(dir, "install.d", name), "#!/bin/bash\n"+body+"\n", mode)
	}
	script("20-second", `echo "20 $GREETING" >> `+log, 0o755)
	script("10-first", `echo "10 $GREETING" >> `+log, 0o755)
	script("15-not-executable", `echo 15 >> `+log, 0o644)
	script("17-has.dot", `echo 17 >> `+log, 0o755)
	script("30-fails", `echo 30 >> `+log+`; exit 3`, 0o755)
	script("40-never", `echo 40 >> `+log, 0o755)
	writeFile(t, filepath.Join(dir, "environment.d", "10-greeting.bash"), "export GREETING=hello\n", 0o644)
	rp := filepath.Join(hooks, "bin/dib-run-parts")

	r := runScript(t, rp, nil, "--list", filepath.Join(dir, "install.d"))
	var names []string
	for _, l := range strings.Fields(r.out) {
		names = append(names, filepath.Base(l))
	}
	if got := strings.Join(names, " "); got != "10-first 20-second 30-fails 40-never" {
		t.Errorf("--list = %q", got)
	}
	r = runScript(t, rp, nil, filepath.Join(dir, "install.d"))
	if r.code != 3 {
		t.Errorf("exit %d, want 3 (the failing script's)\n%s", r.code, r.out)
	}
	if got := readFile(t, log); got != "10 hello\n20 hello\n30\n" {
		t.Errorf("ran %q", got)
	}
}

func TestManifestsDir(t *testing.T) {
	hooks := hooksTree(t, "manifests")
	target := t.TempDir()
	r := runScript(t, filepath.Join(hooks, "extra-data.d/20-manifest-dir"), map[string]string{"TMP_MOUNT_PATH": target})
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.out)
	}
	writeFile(t, filepath.Join(target, "etc/dib-manifests/dib-manifest-dpkg-img"), "{}", 0o644)
	// cleanup.d records DIB_ENV and DIB_ARGS (the runtime's, secrets
	// already redacted) and copies the directory beside the outputs.
	out := filepath.Join(t.TempDir(), "img")
	r = runScript(t, filepath.Join(hooks, "cleanup.d/01-copy-manifests-dir"), map[string]string{
		"TMP_MOUNT_PATH": target, "IMAGE_NAME": out, "DIB_PLAN_ID": "sha256:abc",
		"DIB_ENV":  "declare -x DIB_DEV_USER_PASSWORD=\"<secret>\"\ndeclare -x DIB_RELEASE=\"bookworm\"",
		"DIB_ARGS": "-a amd64 -o img -t qcow2 debian-minimal vm",
	})
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.out)
	}
	for _, dir := range []string{filepath.Join(target, "etc/dib-manifests"), out + ".d/dib-manifests"} {
		if got := readFile(t, filepath.Join(dir, "dib_environment")); got != "declare -x DIB_DEV_USER_PASSWORD=\"<secret>\"\ndeclare -x DIB_RELEASE=\"bookworm\"\n" {
			t.Errorf("%s: dib_environment = %q", dir, got)
		}
		if got := readFile(t, filepath.Join(dir, "dib_arguments")); got != "-a amd64 -o img -t qcow2 debian-minimal vm\n" {
			t.Errorf("%s: dib_arguments = %q", dir, got)
		}
		if got := readFile(t, filepath.Join(dir, "dib_plan_id")); got != "sha256:abc\n" {
			t.Errorf("%s: plan id %q", dir, got)
		}
		if got := readFile(t, filepath.Join(dir, "dib-manifest-dpkg-img")); got != "{}" {
			t.Errorf("%s: dpkg manifest %q", dir, got)
		}
	}
	if fi, err := os.Stat(filepath.Join(target, "etc/dib-manifests/dib_environment")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the image's manifest is not root's only: %v", fi.Mode())
	}
}

func TestInstallTypes(t *testing.T) {
	hooks := hooksTree(t, "install-types")
	writeFile(t, filepath.Join(hooks, "install.d/nova-source-install/10-nova-src"), "#!/bin/bash\n", 0o755)
	writeFile(t, filepath.Join(hooks, "install.d/nova-package-install/10-nova-pkg"), "#!/bin/bash\n", 0o755)
	writeFile(t, filepath.Join(hooks, "install.d/my-app-source-install/20-app-src"), "#!/bin/bash\n", 0o755)
	r := runScript(t, filepath.Join(hooks, "extra-data.d/99-enable-install-types"), map[string]string{
		"TMP_HOOKS_PATH": hooks, "DIB_INSTALLTYPE_nova": "package",
	})
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.out)
	}
	for link, want := range map[string]string{
		"10-nova-pkg": "nova-package-install/10-nova-pkg",
		"20-app-src":  "my-app-source-install/20-app-src",
	} {
		got, err := os.Readlink(filepath.Join(hooks, "install.d", link))
		if err != nil || got != want {
			t.Errorf("install.d/%s -> %q (%v), want %q", link, got, err, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(hooks, "install.d/10-nova-src")); err == nil {
		t.Error("the source type of nova was enabled too")
	}
}

func TestModprobeBlacklist(t *testing.T) {
	hooks := hooksTree(t, "modprobe")
	r := runScript(t, filepath.Join(hooks, "extra-data.d/50-modprobe-blacklist"), map[string]string{
		"TMP_HOOKS_PATH": hooks, "DIB_MODPROBE_BLACKLIST": "nouveau  floppy",
	})
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.out)
	}
	if got := readFile(t, filepath.Join(hooks, "modprobe.d/blacklist-dib-element.conf")); got != "blacklist nouveau\nblacklist floppy\n" {
		t.Errorf("blacklist = %q", got)
	}
}

// gitRepo makes a repository with two commits; the first is tagged v1.
func gitRepo(t *testing.T) string {
	t.Helper()
	git := requireTool(t, "git")
	dir := filepath.Join(t.TempDir(), "upstream")
	g := func(args ...string) {
		cmd := exec.Command(git, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org", "GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	os.MkdirAll(dir, 0o755)
	g("init", "-q", "-b", "main")
	writeFile(t, filepath.Join(dir, "VERSION"), "1\n", 0o644)
	g("add", "VERSION")
	g("commit", "-q", "-m", "one")
	g("tag", "v1")
	writeFile(t, filepath.Join(dir, "VERSION"), "2\n", 0o644)
	g("commit", "-q", "-am", "two")
	return dir
}

// tarball writes a gzipped tarball with one top directory "proj-1.0".
func tarball(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "proj.tar.gz")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	for _, e := range []struct{ name, body string }{
		{"proj-1.0/", ""}, {"proj-1.0/README", "readme\n"}, {"proj-1.0/sub/", ""}, {"proj-1.0/sub/file", "sub\n"},
	} {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	zw.Close()
	f.Close()
	return p
}

func TestSourceRepositories(t *testing.T) {
	t.Parallel()
	requireTool(t, "tar")
	repo := gitRepo(t)
	tgz := tarball(t)
	hooks := hooksTree(t, "source-repositories", "cache-url")
	cache := t.TempDir()
	writeFile(t, filepath.Join(hooks, "source-repository-test"), strings.Join([]string{
		"# name type destination location [ref]",
		"app git /opt/app $UPSTREAM",
		"app-old git /opt/app-old " + repo + " v1",
		"app-all git /opt/app-all " + repo + " *",
		"mirrored git /opt/mirrored https://git.example.org/upstream",
		"proj tar /opt/proj " + tgz + " *",
		"proj-whole tar /opt/whole " + tgz + " .",
		"proj-sub tar /opt/sub file://" + tgz + " proj-1.0/sub",
		"notes file /opt/notes/README " + filepath.Join(repo, "VERSION"),
		"skipped git /opt/skipped " + repo,
		"pkg package /opt/pkg whatever",
	}, "\n")+"\n", 0o644)
	base := func(target string) map[string]string {
		return map[string]string{
			"TMP_HOOKS_PATH":          hooks,
			"TMP_MOUNT_PATH":          target,
			"DIB_IMAGE_CACHE":         cache,
			"IMAGE_NAME":              "img",
			"UPSTREAM":                repo,
			"DIB_GITREPOBASE":         filepath.Dir(repo) + "/",
			"DIB_INSTALLTYPE_skipped": "package",
			"DIB_REPOREF_app_old":     "", // empty override keeps the file's ref
			"GIT_CONFIG_GLOBAL":       "/dev/null",
		}
	}
	script := filepath.Join(hooks, "extra-data.d/98-source-repositories")
	target := t.TempDir()
	env := base(target)
	r := runScript(t, script, env)
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.out)
	}
	for p, want := range map[string]string{
		"opt/app/VERSION":             "2\n", // no master: the default branch
		"opt/app-old/VERSION":         "1\n",
		"opt/app-all/VERSION":         "2\n",
		"opt/mirrored/VERSION":        "2\n", // DIB_GITREPOBASE
		"opt/proj/README":             "readme\n",
		"opt/proj/sub/file":           "sub\n",
		"opt/whole/proj-1.0/README":   "readme\n",
		"opt/sub/file":                "sub\n",
		"opt/notes/README":            "2\n",
		"etc/dib-source-repositories": "/opt/app\n/opt/app-old\n/opt/app-all\n/opt/mirrored\n/opt/proj\n/opt/whole\n/opt/sub\n/opt/notes/README\n",
	} {
		if got := readFile(t, filepath.Join(target, p)); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(target, "opt/skipped")); err == nil {
		t.Error("a source with install type package was fetched")
	}
	if out, err := exec.Command("git", "-C", filepath.Join(target, "opt/app-all"), "tag").Output(); err != nil || string(out) != "v1\n" {
		t.Errorf("REF * did not bring the tags: %q %v", out, err)
	}
	manifest := readFile(t, filepath.Join(target, "etc/dib-manifests/dib-manifest-git-img"))
	if !strings.HasPrefix(manifest, "app git /opt/app "+repo+" ") || strings.Count(manifest, "\n") != 4 ||
		!strings.Contains(manifest, "mirrored git /opt/mirrored "+repo+" ") {
		t.Errorf("git manifest:\n%s", manifest)
	}

	// Another element asking for the same destination from elsewhere.
	writeFile(t, filepath.Join(hooks, "source-repository-zz-clash"), "clash git /opt/app "+repo+" v1\n", 0o644)
	if r := runScript(t, script, base(t.TempDir())); r.code == 0 || !strings.Contains(r.out, "already holds another") {
		t.Errorf("same destination twice: exit %d\n%s", r.code, r.out)
	}
	os.Remove(filepath.Join(hooks, "source-repository-zz-clash"))

	// DIB_REPOREF_<name> overrides the ref; DIB_OFFLINE=1 works from the
	// cache even when the upstream is gone.
	if err := os.RemoveAll(repo); err != nil {
		t.Fatal(err)
	}
	target = t.TempDir()
	env = base(target)
	env["DIB_OFFLINE"] = "1"
	env["DIB_REPOREF_app"] = "v1"
	r = runScript(t, script, env)
	if r.code != 0 {
		t.Fatalf("offline run: exit %d:\n%s", r.code, r.out)
	}
	if got := readFile(t, filepath.Join(target, "opt/app/VERSION")); got != "1\n" {
		t.Errorf("with DIB_REPOREF_app=v1: VERSION = %q", got)
	}

	// Offline and not cached: a clear failure.
	env = base(t.TempDir())
	env["DIB_OFFLINE"] = "1"
	env["DIB_REPOLOCATION_app"] = filepath.Join(t.TempDir(), "elsewhere")
	r = runScript(t, script, env)
	if r.code == 0 || !strings.Contains(r.out, "offline") {
		t.Errorf("want an offline failure, got exit %d:\n%s", r.code, r.out)
	}

	// Nothing fetched: NO_SOURCE_REPOSITORIES, or every install type package.
	for k, v := range map[string]string{"NO_SOURCE_REPOSITORIES": "1", "DIB_DEFAULT_INSTALLTYPE": "package"} {
		target = t.TempDir()
		env = base(target)
		env[k] = v
		if r := runScript(t, script, env); r.code != 0 {
			t.Errorf("%s: exit %d\n%s", k, r.code, r.out)
		}
		if _, err := os.Stat(filepath.Join(target, "opt")); err == nil {
			t.Errorf("%s=%s: sources fetched", k, v)
		}
	}
}

func TestSelectBootKernelInitrd(t *testing.T) {
	hooks := hooksTree(t, "select-boot-kernel-initrd")
	root := t.TempDir()
	for _, f := range []string{"boot/vmlinuz-5.14.0-1.el9", "boot/initramfs-5.14.0-1.el9.img",
		"boot/vmlinuz-5.14.0-10.el9", "boot/initramfs-5.14.0-10.el9.img", "boot/vmlinuz-6.0.0-noinitrd"} {
		writeFile(t, filepath.Join(root, f), "", 0o644)
	}
	r := runScript(t, filepath.Join(hooks, "bin/select-boot-kernel-initrd"), nil, root)
	if r.code != 0 || r.out != "vmlinuz-5.14.0-10.el9 initramfs-5.14.0-10.el9.img\n" {
		t.Errorf("got %q (exit %d)", r.out, r.code)
	}
	if r := runScript(t, filepath.Join(hooks, "bin/select-boot-kernel-initrd"), nil, t.TempDir()); r.code == 0 {
		t.Error("no kernel must be an error")
	}
}

func TestDracutConf(t *testing.T) {
	hooks := hooksTree(t, "dracut-regenerate")
	target := t.TempDir()
	modules := "- name: lvm\n  packages:\n    - lvm2\n    - device-mapper # comment\n- name: crypt\n  packages: [cryptsetup, tpm2-tools]\n- name: nfs\n"
	r := runScript(t, filepath.Join(hooks, "extra-data.d/50-dracut-conf"), map[string]string{
		"TMP_HOOKS_PATH": hooks, "TMP_MOUNT_PATH": target, "DIB_DRACUT_ENABLED_MODULES": modules,
	})
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.out)
	}
	if got := readFile(t, filepath.Join(target, "etc/dracut.conf.d/50-dib-enabled-modules.conf")); got != "add_dracutmodules+=\" lvm crypt nfs \"\n" {
		t.Errorf("conf = %q", got)
	}
	if got := readFile(t, filepath.Join(hooks, "dracut-regenerate-packages")); got != "lvm2\ndevice-mapper\ncryptsetup\ntpm2-tools\n" {
		t.Errorf("packages = %q", got)
	}
}

// TestDpkgManifest: finalise.d writes DIB's JSON dpkg manifest, byte for
// byte as DIB's sed leaves it (dpkg-query faked).
func TestDpkgManifest(t *testing.T) {
	hooks := hooksTree(t, "dpkg")
	bin, dir := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(bin, "dpkg-query"), "#!/bin/sh\nprintf '%s' '{\"package\": \"adduser\",\"arch\": \"all\",\"version\": \"3.134\",\"status\": \"ii \"},{\"package\": \"zlib1g\",\"arch\": \"amd64\",\"version\": \"1:1.2.13\",\"status\": \"ii \"},'\n", 0o755)
	r := runScript(t, filepath.Join(hooks, "finalise.d/99-write-dpkg-manifest"), map[string]string{
		"PATH": bin + ":" + os.Getenv("PATH"), "DIB_MANIFEST_IMAGE_DIR": dir, "IMAGE_NAME": "/out/vm",
	})
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.out)
	}
	want := "{\"packages\": [\n{\"package\": \"adduser\",\"arch\": \"all\",\"version\": \"3.134\",\"status\": \"ii \"    },\n{\"package\": \"zlib1g\",\"arch\": \"amd64\",\"version\": \"1:1.2.13\",\"status\": \"ii \"}\n]}"
	if got := readFile(t, filepath.Join(dir, "dib-manifest-dpkg-vm")); got != want {
		t.Errorf("manifest\n%q\nwant\n%q", got, want)
	}
}

// TestDevuserKeys: extra-data.d/50-devuser as DIB's: a named keys file that
// does not exist is skipped silently; without one, the caller's id_rsa.pub
// (not id_ed25519.pub) is used.
func TestDevuserKeys(t *testing.T) {
	hooks := hooksTree(t, "devuser")
	script := filepath.Join(hooks, "extra-data.d/50-devuser")
	dest := filepath.Join(hooks, "devuser-ssh-authorized-keys")
	r := runScript(t, script, map[string]string{"TMP_HOOKS_PATH": hooks, "DIB_DEV_USER_AUTHORIZED_KEYS": "/nonexistent/keys"})
	if r.code != 0 || r.out != "" {
		t.Errorf("missing keys file: exit %d, output %q", r.code, r.out)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Errorf("keys written for a missing file: %v", err)
	}
	home := t.TempDir()
	writeFile(t, filepath.Join(home, ".ssh/id_ed25519.pub"), "ssh-ed25519 AAAAed\n", 0o644)
	writeFile(t, filepath.Join(home, ".ssh/id_rsa.pub"), "ssh-rsa AAAArsa\n", 0o644)
	writeFile(t, filepath.Join(home, ".ssh/id_dsa.pub"), "ssh-dss AAAAdsa\n", 0o644)
	if r := runScript(t, script, map[string]string{"TMP_HOOKS_PATH": hooks, "HOME": home}); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.out)
	}
	if got := readFile(t, dest); got != "ssh-rsa AAAArsa\n" {
		t.Errorf("default keys = %q, want the caller's id_rsa.pub", got)
	}
}
