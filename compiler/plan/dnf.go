package plan

import (
	"path"
	"strings"
)

// DNF is the bootstrap of an RPM-family tree the way DIB's yum-minimal
// element makes it, with the build host's dnf and rpm:
//
//  1. the rpm database is initialised in the empty tree (RPMDBPath);
//  2. the release packages (Bootstrap: basesystem, filesystem, setup and
//     the distribution's release, repos and gpg-keys packages) are
//     downloaded with `dnf download` from the bootstrap repositories and
//     installed with `rpm --nodeps -ivh`, which gives the tree its repo
//     files and GPG keys;
//  3. with ReposDir (DIB_YUM_MINIMAL_BOOTSTRAP_REPOS) the tree's repo files
//     are set aside as *.repo.USING_MIRROR and ReposDir's files copied in
//     (yum-minimal's cleanup.d puts them back); ExtraReposDir
//     (DIB_YUM_MINIMAL_EXTRA_REPOS) is copied in too;
//  4. the host's dnf installs the package manager (Manager) into the tree
//     with --installroot, from the tree's repo files and GPG keys;
//  5. in the tree: rpm --rebuilddb, dnf clean all, dnf update, and dnf
//     install of the base packages (Base).
//
// When ReposDir is empty, the bootstrap repositories are the operating
// system element's yum.repos.d/$DIB_RELEASE files (RepoFiles, paths in the
// hook tree) with @MIRROR@ replaced by the bootstrap's mirror.
type DNF struct {
	Distro     string `json:"distro"`     // DISTRO_NAME: centos, fedora, …
	Releasever string `json:"releasever"` // dnf's $releasever: DIB_RELEASE up to its first "-"
	Arch       string `json:"arch"`       // RPM architecture (x86_64, aarch64, …)
	RPMDBPath  string `json:"rpmdb_path"` // /var/lib/rpm, /usr/lib/sysimage/rpm from CentOS 10
	// ReposDir is DIB_YUM_MINIMAL_BOOTSTRAP_REPOS, a directory on the build
	// host; ExtraReposDir is DIB_YUM_MINIMAL_EXTRA_REPOS.
	ReposDir      string     `json:"repos_dir,omitempty"`
	ExtraReposDir string     `json:"extra_repos_dir,omitempty"`
	RepoFiles     []RepoFile `json:"repo_files,omitempty"`
	Bootstrap     []string   `json:"bootstrap"`
	Manager       []string   `json:"manager"`
	Base          []string   `json:"base"`
}

// RepoFile is a repository file of the hook tree used to bootstrap.
type RepoFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// DNFPaths are the host paths a DNF bootstrap runs with.
type DNFPaths struct {
	Target   string // the tree ($TARGET_ROOT)
	ReposDir string // the bootstrap repositories
	WorkDir  string // where the release packages are downloaded
	CacheDir string // dnf's package cache on the host
}

// HostDNFNoLocal turns off dnf-plugins-core's "local" plugin, which
// Debian enables: it adds a repository of every package the host's dnf
// installs (/var/lib/dnf/plugins/local), which the build must neither
// read nor fill.
const HostDNFNoLocal = "--disableplugin=local"

// DownloadArgv is the `dnf download` of the release packages.
func (d *DNF) DownloadArgv(p DNFPaths) []string {
	argv := []string{"dnf", "download", HostDNFNoLocal, "--releasever=" + d.Releasever, "--setopt=reposdir=" + p.ReposDir,
		"--setopt=cachedir=" + path.Join(p.WorkDir, "cache"), "--destdir=" + path.Join(p.WorkDir, "rpms")}
	return append(argv, d.Bootstrap...)
}

// RPMInstallArgv installs the downloaded release packages into the tree
// (the file names are appended by the caller).
func (d *DNF) RPMInstallArgv(p DNFPaths) []string {
	return []string{"rpm", "--root", p.Target, "--dbpath", d.RPMDBPath, "--nodeps", "-ivh"}
}

// InstallRootArgv is the host dnf's install of the package manager into
// the tree.
func (d *DNF) InstallRootArgv(p DNFPaths) []string {
	argv := []string{"dnf", "-y", HostDNFNoLocal, "--disableexcludes=all", "--setopt=cachedir=" + p.CacheDir, "--setopt=keepcache=True",
		"--setopt=reposdir=" + path.Join(p.Target, "etc/yum.repos.d"), "--releasever=" + d.Releasever,
		"--installroot", p.Target, "install"}
	return append(argv, d.Manager...)
}

// ChrootDNFCache is where the host's dnf cache is bound in the tree while
// the base packages are installed (DIB binds its yum cache on /tmp/yum).
const ChrootDNFCache = "/tmp/yum"

// ChrootCommands are the commands run in the tree after the package
// manager is installed, each a shell-free argv.
func (d *DNF) ChrootCommands() [][]string {
	cmds := [][]string{
		{"rpm", "--rebuilddb"},
		{"dnf", "clean", "all"},
		{"dnf", "-y", "update"},
	}
	if len(d.Base) > 0 {
		cmds = append(cmds, append([]string{"dnf", "-y", "--setopt=cachedir=" + ChrootDNFCache, "--setopt=keepcache=True", "install"}, d.Base...))
	}
	return cmds
}

// Describe returns the bootstrap's commands as display lines, with the
// host paths written as the variables DIB uses for them.
func (d *DNF) Describe() []string {
	p := DNFPaths{Target: "$TARGET_ROOT", ReposDir: d.ReposDir, WorkDir: "$WORK", CacheDir: "$DIB_IMAGE_CACHE/dnf/" + d.Distro + "-" + d.Releasever + "-" + d.Arch}
	if p.ReposDir == "" {
		p.ReposDir = "$WORK/repos"
	}
	lines := []string{strings.Join(d.DownloadArgv(p), " ")}
	lines = append(lines, strings.Join(d.RPMInstallArgv(p), " ")+" $WORK/rpms/*.rpm")
	lines = append(lines, strings.Join(d.InstallRootArgv(p), " "))
	for _, c := range d.ChrootCommands() {
		lines = append(lines, "chroot $TARGET_ROOT "+strings.Join(c, " "))
	}
	return lines
}
