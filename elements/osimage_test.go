package elements

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// ubuntu's root.d against a local stand-in for cloud-images.ubuntu.com: a
// tiny squashfs and its SHA256SUMS served over HTTP. Download, check and
// unpack; a second build uses the cache; DIB_OFFLINE needs no server; a
// corrupt download is fetched again and then refused; DIB_LOCAL_IMAGE takes
// a tarball.
func TestUbuntuCloudImage(t *testing.T) {
	requireTool(t, "mksquashfs")
	requireTool(t, "unsquashfs")
	requireTool(t, "curl")
	hooks := hooksTree(t, "ubuntu", "cache-url")
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "etc", "os-release"), "NAME=\"Ubuntu\"\nVERSION_CODENAME=noble\n", 0o644)
	writeFile(t, filepath.Join(src, "usr", "bin", "apt-get"), "#!/bin/sh\n", 0o755)
	squash := filepath.Join(t.TempDir(), "noble-server-cloudimg-amd64.squashfs")
	if out, err := exec.Command("mksquashfs", src, squash, "-noappend", "-quiet", "-all-root").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	good, _ := os.ReadFile(squash)
	sum := sha256.Sum256(good)
	sums := hex.EncodeToString(sum[:]) + " *noble-server-cloudimg-amd64.squashfs\n" +
		strings.Repeat("0", 64) + " *noble-server-cloudimg-arm64.squashfs\n"
	var corrupt atomic.Bool
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/noble/current/SHA256SUMS":
			w.Write([]byte(sums))
		case "/noble/current/noble-server-cloudimg-amd64.squashfs":
			if corrupt.Load() {
				w.Write([]byte("not the image"))
				return
			}
			w.Write(good)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	cache := t.TempDir()
	env := func(root string, extra ...string) map[string]string {
		m := map[string]string{"ARCH": "amd64", "TARGET_ROOT": root, "DIB_IMAGE_CACHE": cache, "DIB_RELEASE": "noble",
			"DIB_CLOUD_IMAGES": srv.URL + "/noble/current", "TMP_HOOKS_PATH": hooks}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	hook := filepath.Join(hooks, "root.d", "10-cache-ubuntu-tarball")
	root := t.TempDir()
	if r := runScript(t, hook, env(root)); r.code != 0 {
		t.Fatalf("first build: exit %d\n%s", r.code, r.out)
	}
	if got := readFile(t, filepath.Join(root, "etc", "os-release")); !strings.Contains(got, "noble") {
		t.Errorf("tree not unpacked: os-release %q", got)
	}
	if fi, err := os.Stat(filepath.Join(root, "usr", "bin", "apt-get")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("apt-get in the tree: %v %v", fi, err)
	}
	if got := readFile(t, filepath.Join(cache, "SHA256SUMS.ubuntu.noble.amd64")); got != sums {
		t.Errorf("cached sums %q", got)
	}

	srv.Close() // offline: the cached image, unchecked
	root2 := t.TempDir()
	if r := runScript(t, hook, env(root2, "DIB_OFFLINE", "1")); r.code != 0 {
		t.Fatalf("offline build: exit %d\n%s", r.code, r.out)
	}
	if _, err := os.Stat(filepath.Join(root2, "etc", "os-release")); err != nil {
		t.Errorf("offline build did not unpack the cache: %v", err)
	}

	// A corrupt download: fetched again with -f, still wrong, refused.
	srv2 := httptest.NewServer(srv.Config.Handler)
	defer srv2.Close()
	corrupt.Store(true)
	cache2 := t.TempDir()
	e := env(t.TempDir(), "DIB_CLOUD_IMAGES", srv2.URL+"/noble/current")
	e["DIB_IMAGE_CACHE"] = cache2
	before := hits.Load()
	r := runScript(t, hook, e)
	if r.code == 0 || !strings.Contains(r.out, "does not match SHA256SUMS") {
		t.Errorf("corrupt image: exit %d\n%s", r.code, r.out)
	}
	if n := hits.Load() - before; n != 3 {
		t.Errorf("corrupt image: %d requests, want 3 (sums, image, forced image)", n)
	}

	// DIB_LOCAL_IMAGE: a root tarball, no server.
	tgz := filepath.Join(t.TempDir(), "root.tar.gz")
	if out, err := exec.Command("tar", "-C", src, "-czf", tgz, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	root3 := t.TempDir()
	if r := runScript(t, hook, env(root3, "DIB_LOCAL_IMAGE", tgz, "DIB_CLOUD_IMAGES", "http://127.0.0.1:9/none")); r.code != 0 {
		t.Fatalf("local image: exit %d\n%s", r.code, r.out)
	}
	if _, err := os.Stat(filepath.Join(root3, "etc", "os-release")); err != nil {
		t.Errorf("local image not unpacked: %v", err)
	}
	if r := runScript(t, hook, env(t.TempDir(), "DIB_LOCAL_IMAGE", "/nonexistent.squashfs")); r.code == 0 || !strings.Contains(r.out, "DIB_LOCAL_IMAGE") {
		t.Errorf("missing local image: exit %d\n%s", r.code, r.out)
	}
}

// ubuntu's mirror rewrite on both source formats, in a chroot.
func TestUbuntuMirrorInChroot(t *testing.T) {
	t.Parallel()
	hooks := hooksTree(t, "ubuntu")
	steps := `
h=/tmp/in_target.d/pre-install.d
mkdir -p /etc/apt/sources.list.d /var/log/ub
rm -f /etc/apt/sources.list.d/*.sources
cat > /etc/apt/sources.list <<'X'
deb http://archive.ubuntu.com/ubuntu jammy main
deb http://archive.ubuntu.com/ubuntu jammy universe
deb http://security.ubuntu.com/ubuntu jammy-security main
X
DIB_DISTRIBUTION_MIRROR= $h/01-set-ubuntu-mirror
cp /etc/apt/sources.list /var/log/ub/unset
DIB_DISTRIBUTION_MIRROR=http://mirror.example/ubuntu DIB_DISTRIBUTION_MIRROR_UBUNTU_IGNORE='(universe|multiverse)' $h/01-set-ubuntu-mirror
cp /etc/apt/sources.list /var/log/ub/legacy
cat > /etc/apt/sources.list.d/ubuntu.sources <<'X'
Types: deb
URIs: http://archive.ubuntu.com/ubuntu
Suites: noble noble-updates
Components: main
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg
X
DIB_DISTRIBUTION_MIRROR=https://mirror.example/ubuntu SIGNED_BY=/etc/apt/mirror.gpg DIB_DISTRIBUTION_MIRROR_UBUNTU_INSECURE=1 DIB_DISTRIBUTION_MIRROR_VERIFY_HTTPS=0 $h/01-set-ubuntu-mirror
cp /etc/apt/sources.list.d/ubuntu.sources /etc/apt/apt.conf.d/95allow-unauthenticated /var/log/ub/
`
	up, out := overlayChroot(t, hooks, steps)
	read := func(p string) string { return readUp(t, up, out, "var/log/ub/"+p) }
	legacy := "deb http://archive.ubuntu.com/ubuntu jammy main\ndeb http://archive.ubuntu.com/ubuntu jammy universe\ndeb http://security.ubuntu.com/ubuntu jammy-security main\n"
	for p, want := range map[string]string{
		"unset":                   legacy,
		"legacy":                  "deb http://mirror.example/ubuntu jammy main\ndeb http://archive.ubuntu.com/ubuntu jammy universe\ndeb http://mirror.example/ubuntu jammy-security main\n",
		"ubuntu.sources":          "Types: deb\nURIs: https://mirror.example/ubuntu\nSuites: noble noble-updates\nComponents: main\nSigned-By: /etc/apt/mirror.gpg\n",
		"95allow-unauthenticated": "APT::Get::AllowUnauthenticated \"true\";\nAcquire::AllowInsecureRepositories \"true\";\nAcquire::https::Verify-Peer \"false\";\n",
	} {
		if got := read(p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
}

// docker and containerfile make the tree from a container engine; here a
// stand-in engine logs its calls and exports a prepared tree.
func TestContainerRootElements(t *testing.T) {
	hooks := hooksTree(t, "docker", "containerfile")
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "etc", "os-release"), "ID=rocky\n", 0o644)
	rootTar := filepath.Join(t.TempDir(), "root.tar")
	if out, err := exec.Command("tar", "-C", src, "-cf", rootTar, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	engine := func(bin, name string) string {
		log := filepath.Join(bin, name+".log")
		writeFile(t, filepath.Join(bin, name), `#!/bin/sh
echo "$*" >> '`+log+`'
case "$1" in
run) echo c0ffee ;;
export) cat '`+rootTar+`' ;;
esac
`, 0o755)
		return log
	}
	check := func(root string) {
		t.Helper()
		if got := readFile(t, filepath.Join(root, "etc", "os-release")); got != "ID=rocky\n" {
			t.Errorf("tree: os-release %q", got)
		}
		if _, err := os.Stat(filepath.Join(root, ".extra_settings")); err == nil {
			t.Error(".extra_settings left in the tree")
		}
	}

	t.Run("docker", func(t *testing.T) {
		bin := t.TempDir()
		log := engine(bin, "docker")
		root := t.TempDir()
		writeFile(t, filepath.Join(root, ".extra_settings"), "DIB_RELEASE=9\n", 0o644)
		r := runScript(t, filepath.Join(hooks, "root.d", "08-docker"), map[string]string{
			"PATH": bin + ":" + os.Getenv("PATH"), "TARGET_ROOT": root, "DISTRO_NAME": "rockylinux", "DIB_RELEASE": "8"})
		if r.code != 0 {
			t.Fatalf("exit %d\n%s", r.code, r.out)
		}
		check(root)
		if got, want := readFile(t, log), "run -d rockylinux:9 /bin/sh\nexport c0ffee\nrm c0ffee\n"; got != want {
			t.Errorf("docker calls %q, want %q", got, want)
		}
		r = runScript(t, filepath.Join(hooks, "root.d", "08-docker"), map[string]string{
			"PATH": bin + ":" + os.Getenv("PATH"), "TARGET_ROOT": t.TempDir(), "DISTRO_NAME": "rockylinux"})
		if r.code == 0 || !strings.Contains(r.out, "DIB_RELEASE must be set") {
			t.Errorf("no DIB_RELEASE: exit %d\n%s", r.code, r.out)
		}
	})

	t.Run("containerfile", func(t *testing.T) {
		bin := t.TempDir()
		podman := engine(bin, "podman")
		docker := engine(bin, "docker")
		el := t.TempDir()
		writeFile(t, filepath.Join(el, "containerfiles", "9"), "FROM quay.io/rockylinux/rockylinux:9\n", 0o644)
		cache := t.TempDir()
		root := t.TempDir()
		r := runScript(t, filepath.Join(hooks, "root.d", "08-containerfile"), map[string]string{
			"PATH": bin + ":" + os.Getenv("PATH"), "TARGET_ROOT": root, "DIB_RELEASE": "9", "DIB_IMAGE_CACHE": cache,
			"BASH_FUNC_get_image_element_array%%": `() { echo "[base]=/nonexistent [rocky-container]=` + el + `"; }`})
		if r.code != 0 {
			t.Fatalf("exit %d\n%s", r.code, r.out)
		}
		check(root)
		calls := strings.Split(strings.TrimSpace(readFile(t, podman)), "\n")
		if len(calls) != 5 {
			t.Fatalf("podman calls %q", calls)
		}
		tag := strings.Fields(calls[0])[4]
		name := strings.Fields(calls[1])[4]
		want := []string{
			"build --network host -t " + tag + " -f " + el + "/containerfiles/9 " + cache + "/containerfile",
			"run --network host --name " + name + " -d " + tag + " /bin/sh",
			"export " + name, "rm " + name, "rmi " + tag,
		}
		if strings.Join(calls, "\n") != strings.Join(want, "\n") {
			t.Errorf("podman calls\n%s\nwant\n%s", strings.Join(calls, "\n"), strings.Join(want, "\n"))
		}

		// docker, a given file, a network driver and build options.
		file := filepath.Join(t.TempDir(), "Containerfile")
		writeFile(t, file, "FROM debian:bookworm\n", 0o644)
		r = runScript(t, filepath.Join(hooks, "root.d", "08-containerfile"), map[string]string{
			"PATH": bin + ":" + os.Getenv("PATH"), "TARGET_ROOT": t.TempDir(), "DIB_RELEASE": "9", "DIB_IMAGE_CACHE": cache,
			"DIB_CONTAINERFILE_RUNTIME": "docker", "DIB_CONTAINERFILE_DOCKERFILE": file, "DIB_CONTAINERFILE_NETWORK_DRIVER": "bridge",
			"DIB_CONTAINERFILE_BUILDOPTS": "--build-arg=HTTP_PROXY=http://proxy:3128 --pull", "DIB_CONTAINER_CONTEXT": el})
		if r.code != 0 {
			t.Fatalf("docker: exit %d\n%s", r.code, r.out)
		}
		first := strings.SplitN(readFile(t, docker), "\n", 2)[0]
		if !strings.HasPrefix(first, "build --network bridge -t dib-tmp-work-image-") ||
			!strings.HasSuffix(first, " -f "+file+" --build-arg=HTTP_PROXY=http://proxy:3128 --pull "+el) {
			t.Errorf("docker build call %q", first)
		}

		// No container file anywhere: an error that says how to give one.
		r = runScript(t, filepath.Join(hooks, "root.d", "08-containerfile"), map[string]string{
			"PATH": bin + ":" + os.Getenv("PATH"), "TARGET_ROOT": t.TempDir(), "DIB_RELEASE": "10", "DIB_IMAGE_CACHE": cache})
		if r.code == 0 || !strings.Contains(r.out, "DIB_CONTAINERFILE_DOCKERFILE") {
			t.Errorf("no container file: exit %d\n%s", r.code, r.out)
		}
	})
}
