package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/plan"
)

// localRPMRepo builds the test RPM repository (testdata/rpmrepo) and
// serves it over HTTP for the test's lifetime; it returns its URL.
func localRPMRepo(t *testing.T) (url string) {
	t.Helper()
	var missing []string
	for _, tool := range []string{"rpmbuild", "createrepo_c", "dnf", "rpm", "busybox", "ldd"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if _, err := exec.Command("dnf", "download", "--help").CombinedOutput(); err != nil {
		missing = append(missing, "dnf download (dnf-plugins-core)")
	}
	if len(missing) > 0 {
		t.Fatalf("the RPM test repository needs %s (Debian packages rpm, createrepo-c, dnf-plugins-core, busybox-static)", strings.Join(missing, ", "))
	}
	repo := filepath.Join(t.TempDir(), "repo")
	if out, err := exec.Command("bash", "testdata/rpmrepo/build-repo.sh", repo).CombinedOutput(); err != nil {
		t.Fatalf("build-repo.sh: %v\n%s", err, out)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(repo)))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestCentOSLocalRepositoryEndToEnd applies the seeds' CentOS examples
// against a local RPM repository: centos-iscsi-efi (vm, EFI,
// dracut-regenerate, iscsi-boot, cloud-init datasources) and
// centos-minimal-gpt (vm, GPT with a BIOS boot partition) and centos-efi-lvm
// (UEFI, root on LVM, xfs, a 64 GiB sparse disk), and fedora-vm
// (fedora-minimal). The host's real
// dnf and rpm bootstrap the tree; inside the image dnf, dracut, setfiles
// and grub2-mkconfig are the repository's stand-ins (see
// testdata/rpmrepo/build-repo.sh). The tar and qcow2 are checked: the rpm
// database, the SELinux relabel's invocation, the GRUB configuration on Red
// Hat's paths, fstab, the repository files the image keeps, and that
// nothing is left behind.
func TestCentOSLocalRepositoryEndToEnd(t *testing.T) {
	requireE2E(t)
	url := localRPMRepo(t)
	kver := "5.14.0-999.dibtest.el9.x86_64"
	for _, ex := range []struct {
		name  string
		esp   bool
		pkgs  []string // besides those every build has
		check func(t *testing.T, read func(string) string)
	}{
		{"centos-iscsi-efi", true, []string{"grub2-pc", "grub2-efi-x64", "shim-x64", "dhclient"}, func(t *testing.T, read func(string) string) {
			// dracut-regenerate rebuilt the initramfs with iscsi-boot's modules.
			if got := read("var/lib/dib-test/dracut.log"); !strings.Contains(got, "dracut -f /boot/initramfs-"+kver+".img "+kver) {
				t.Errorf("dracut calls:\n%s", got)
			}
			if got := read("etc/dracut.conf.d/50-dib-enabled-modules.conf"); !strings.Contains(got, "network iscsi") {
				t.Errorf("dracut modules:\n%s", got)
			}
			// iscsi-boot's grub2-mkconfig, with its kernel argument in
			// Red Hat's /etc/default/grub.
			if got := read("var/lib/dib-test/grub2-mkconfig.log"); !strings.Contains(got, "grub2-mkconfig -o /boot/grub2/grub.cfg") {
				t.Errorf("grub2-mkconfig calls:\n%s", got)
			}
			if got := read("etc/default/grub"); !strings.Contains(got, "rd.iscsi.firmware=1") || !strings.Contains(got, "GRUB_TIMEOUT=") {
				t.Errorf("/etc/default/grub:\n%s", got)
			}
			// ... and in the menu dib's bootloader step wrote.
			if got := read("boot/grub2/grub.cfg"); !strings.Contains(got, "gfxpayload=text rd.iscsi.firmware=1\n") {
				t.Errorf("grub.cfg lacks iscsi-boot's kernel argument:\n%s", got)
			}
		}},
		{"centos-minimal-gpt", false, []string{"grub2-pc"}, nil},
		{"fedora-vm", false, []string{"grub2-pc", "redhat-lsb-core"}, nil},
		{"centos-efi-lvm", true, []string{"lvm2", "cryptsetup"}, func(t *testing.T, read func(string) string) {
			// dracut-regenerate's default modules (LVM, crypt) for a root on LVM.
			if got := read("etc/dracut.conf.d/50-dib-enabled-modules.conf"); !strings.Contains(got, "lvm crypt") {
				t.Errorf("dracut modules:\n%s", got)
			}
		}},
	} {
		t.Run(ex.name, func(t *testing.T) {
			applyRPMExample(t, url, ex.name, ex.esp, ex.pkgs, kver, ex.check)
		})
	}
}

func applyRPMExample(t *testing.T, url, name string, esp bool, extra []string, kver string, check func(*testing.T, func(string) string)) {
	// DIB_YUM_MINIMAL_BOOTSTRAP_REPOS: one .repo for the local repository,
	// its packages checked with the distribution's key, at the path the
	// image has it (dib points the host's dnf into the tree).
	key := "RPM-GPG-KEY-centosofficial"
	if strings.HasPrefix(name, "fedora") {
		key = "RPM-GPG-KEY-fedora-$releasever-$basearch"
	}
	repos := t.TempDir()
	conf := "[dib-test]\nname=dib test repository\nbaseurl=" + url + "/\nenabled=1\n" +
		"gpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/" + key + "\n"
	if err := os.WriteFile(filepath.Join(repos, "dib-test.repo"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../../examples/" + name + ".yaml")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	dibfile := filepath.Join(work, name+".yaml")
	// The example with the local repository, tar and qcow2 outputs and,
	// unless it has one, a fixed size.
	src := strings.Replace(string(example), "\n  DIB_YUM_MINIMAL_BOOTSTRAP_REPOS: /tmp/repo\n", "\n", 1)
	if !strings.Contains(src, "\nenv:\n") {
		src += "env:\n"
	}
	src = strings.Replace(src, "\nenv:\n", "\nenv:\n  DIB_YUM_MINIMAL_BOOTSTRAP_REPOS: "+repos+"\n", 1)
	var kept []string
	inOutputs := false
	for _, line := range strings.Split(src, "\n") {
		if inOutputs && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "-")) {
			continue
		}
		inOutputs = strings.HasPrefix(line, "outputs:")
		if !inOutputs {
			kept = append(kept, line)
		}
	}
	src = strings.Join(kept, "\n") + "outputs: [tar, qcow2]\n"
	if !strings.Contains(src, "\nimage-size:") {
		src += "image-size: 2GiB\n"
	}
	if err := os.WriteFile(dibfile, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	rpmmacros, _ := os.ReadFile(filepath.Join(os.Getenv("HOME"), ".rpmmacros"))

	code, stdout, stderr := runDib(t, "plan", "--json", dibfile)
	if code != 0 {
		t.Fatalf("plan: %d %s", code, stderr)
	}
	p, err := plan.Read(strings.NewReader(stdout))
	if err != nil {
		t.Fatal(err)
	}
	if b := p.Steps[0].Bootstrap; b == nil || b.DNF == nil || b.DNF.ReposDir != repos {
		t.Fatalf("bootstrap %+v", b)
	}
	out, cache, tmp := filepath.Join(work, "out"), filepath.Join(work, "cache"), filepath.Join(work, "tmp")
	os.MkdirAll(tmp, 0o755)
	// Its own build cache: no step result of the stand-ins reaches the
	// user's, nor one of the user's this build.
	code, _, stderr = runDib(t, "apply", "--no-color", "-O", out, "--image-cache", cache, "--cache-dir", filepath.Join(work, "build-cache"), "--work-dir", tmp, dibfile)
	if code != 0 {
		log, _ := os.ReadFile(filepath.Join(out, name+".log"))
		t.Fatalf("apply: exit %d\n%s\n%s", code, stderr, tail(string(log), 120))
	}

	// Nothing left behind: mounts, loop devices, the build directory, the
	// user's ~/.rpmmacros; the dnf cache is the build's.
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), work) {
		t.Errorf("a build mount is left:\n%s", mi)
	}
	if l := sh(t, "losetup", "-a"); strings.Contains(l, work) {
		t.Errorf("a loop device is left: %s", l)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "*")); len(left) > 0 {
		t.Errorf("left in the work directory: %v", left)
	}
	if after, _ := os.ReadFile(filepath.Join(os.Getenv("HOME"), ".rpmmacros")); string(after) != string(rpmmacros) {
		t.Errorf("~/.rpmmacros changed:\n%s", after)
	}
	n := p.Steps[0].Bootstrap.DNF
	if cached, _ := filepath.Glob(filepath.Join(cache, "dnf", n.Distro+"-"+n.Releasever+"-"+n.Arch, "*")); len(cached) == 0 {
		all, _ := exec.Command("find", cache).CombinedOutput()
		t.Errorf("nothing in the dnf cache %s:\n%s", filepath.Join(cache, "dnf"), all)
	}

	sh(t, "qemu-img", "check", filepath.Join(out, name+".qcow2"))
	tree := filepath.Join(work, "tree")
	os.MkdirAll(tree, 0o755)
	sh(t, "tar", "-xf", filepath.Join(out, name+".tar"), "-C", tree)
	read := func(p string) string {
		data, err := os.ReadFile(filepath.Join(tree, p))
		if err != nil {
			t.Errorf("image: %v", err)
		}
		return string(data)
	}

	// The rpm database: the bootstrap's packages (host rpm and dnf) and
	// those the elements installed (in-image dnf), by their CentOS names.
	pkgs := " " + strings.Join(strings.Fields(sh(t, "rpm", "--root", tree, "--dbpath", "/var/lib/rpm", "-qa", "--qf", "%{NAME}\n")), " ") + " "
	want := append(append([]string{}, n.Bootstrap...), n.Manager...) // rpm -ivh, dnf --installroot
	want = append(want,
		"rpm", "bash", "glibc", // the package manager's dependencies
		"gpg-pubkey",                    // the key dnf checked the packages with
		"systemd", "util-linux", "sudo", // dnf in the tree
		"kernel", "dracut", "grub2-tools", "iscsi-initiator-utils", // package-installs, pkg-map redhat
		"selinux-policy-targeted", "policycoreutils", "NetworkManager")
	for _, w := range append(want, extra...) {
		if !strings.Contains(pkgs, " "+w+" ") {
			t.Errorf("rpm -qa lacks %s:%s", w, pkgs)
		}
	}
	if strings.Contains(pkgs, " linux-firmware ") {
		t.Errorf("linux-firmware should have been uninstalled")
	}

	// The SELinux relabel ran in the finished tree, with the image's setfiles.
	// (-m from Fedora 26, -e /boot/efi with an ESP, as DIB.)
	opts := "-F"
	if n.Distro == "fedora" {
		opts += " -m"
	}
	if esp {
		opts += " -e /boot/efi"
	}
	relabel := "setfiles " + opts + " /etc/selinux/targeted/contexts/files/file_contexts /\n"
	if got := read("var/lib/dib-test/setfiles.log"); got != relabel {
		t.Errorf("setfiles calls:\n%s\nwant %s", got, relabel)
	}
	// The GRUB configuration on Red Hat's path: the kernel, its
	// initramfs-V.img, the BLS entry's title, root by label.
	grub2, grub := read("boot/grub2/grub.cfg"), read("boot/grub/grub.cfg")
	if grub2 != grub {
		t.Errorf("/boot/grub2/grub.cfg differs from /boot/grub/grub.cfg:\n%s", grub2)
	}
	var label string
	for _, s := range p.Steps {
		if s.Partition != nil {
			label = s.Partition.Layout.RootFilesystem().Label
		}
	}
	for _, w := range []string{"menuentry 'CentOS Stream (" + kver + ") 9'", "linux /boot/vmlinuz-" + kver + " root=LABEL=" + label + " ro",
		"initrd /boot/initramfs-" + kver + ".img"} {
		if !strings.Contains(grub2, w) {
			t.Errorf("grub.cfg lacks %q:\n%s", w, grub2)
		}
	}
	// fstab is the plan's.
	var lines []string
	for _, s := range p.Steps {
		if s.Partition != nil {
			for _, f := range s.Partition.Layout.Fstab {
				lines = append(lines, f.Line)
			}
		}
	}
	if fstab := read("etc/fstab"); len(lines) == 0 || !strings.Contains(fstab, strings.Join(lines, "\n")) {
		t.Errorf("/etc/fstab:\n%s\nwant the plan's lines:\n%s", fstab, strings.Join(lines, "\n"))
	}
	// The image keeps the distribution's repositories, not the build's.
	own := n.Distro + ".repo"
	if left, _ := filepath.Glob(filepath.Join(tree, "etc/yum.repos.d/*")); len(left) != 1 || filepath.Base(left[0]) != own {
		t.Errorf("/etc/yum.repos.d holds %v, want %s only", left, own)
	}
	// yum-minimal's settings.
	if got := read("etc/locale.conf"); got != "LANG=\"en_US.UTF-8\"\n" {
		t.Errorf("locale.conf %q", got)
	}
	if l, _ := os.Readlink(filepath.Join(tree, "etc/localtime")); l != "/usr/share/zoneinfo/UTC" {
		t.Errorf("localtime -> %q", l)
	}
	if check != nil {
		check(t, read)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
