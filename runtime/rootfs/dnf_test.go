package rootfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/plan"
)

func TestWriteRepoFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repos")
	files := []plan.RepoFile{{Path: "yum.repos.d/9-stream/base.repo"}}
	content := map[string][]byte{"yum.repos.d/9-stream/base.repo": []byte("[base]\nbaseurl=@MIRROR@/9-stream/BaseOS/$basearch/os/\n")}
	if err := writeRepoFiles(dir, files, content, "http://mirror.example/centos/"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "base.repo"))
	if string(got) != "[base]\nbaseurl=http://mirror.example/centos/9-stream/BaseOS/$basearch/os/\n" {
		t.Errorf("base.repo:\n%s", got)
	}
	if err := writeRepoFiles(dir, nil, nil, ""); err == nil || !strings.Contains(err.Error(), "DIB_YUM_MINIMAL_BOOTSTRAP_REPOS") {
		t.Errorf("no repositories: %v", err)
	}
	if err := writeRepoFiles(dir, files, nil, ""); err == nil {
		t.Error("a repo file without content was accepted")
	}
}

func TestInitRPMDB(t *testing.T) {
	root := t.TempDir()
	if err := initRPMDB(root, "/usr/lib/sysimage/rpm"); err != nil {
		t.Fatal(err)
	}
	if l, err := os.Readlink(filepath.Join(root, "var/lib/rpm")); err != nil || l != "../../usr/lib/sysimage/rpm" {
		t.Errorf("/var/lib/rpm -> %q (%v)", l, err)
	}
	old := t.TempDir()
	if err := initRPMDB(old, "/var/lib/rpm"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(old, "var/lib/rpm")); err != nil || !fi.IsDir() {
		t.Errorf("/var/lib/rpm: %v", err)
	}
}

func TestRenameRPMNewAndEditRepos(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc/yum.repos.d"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/locale.conf.rpmnew"), []byte("new"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/yum.repos.d/a.repo"), []byte("gpgkey=file:///etc/pki/rpm-gpg/KEY\n"), 0o644)
	if err := renameRPMNew(root); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "etc/locale.conf")); string(got) != "new" {
		t.Errorf("locale.conf %q", got)
	}
	if err := editRepos(filepath.Join(root, "etc/yum.repos.d"), func(s string) string {
		return strings.ReplaceAll(s, "file:///etc/pki", "file:///tree/etc/pki")
	}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "etc/yum.repos.d/a.repo")); string(got) != "gpgkey=file:///tree/etc/pki/rpm-gpg/KEY\n" {
		t.Errorf("a.repo %q", got)
	}
}

func TestDNFEnv(t *testing.T) {
	t.Setenv("TMPDIR", "/somewhere")
	env := strings.Join(dnfEnv("/work/home"), "\n")
	if strings.Contains(env, "TMPDIR=") || !strings.Contains(env, "HOME=/work/home") || strings.Count(env, "HOME=") != 1 {
		t.Errorf("env:\n%s", env)
	}
	if c := strings.Join(chrootEnv([]string{"HOME=/work/home", "A=b"}), " "); c != "A=b HOME=/root" {
		t.Errorf("chroot env %q", c)
	}
}
