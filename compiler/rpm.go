package compiler

import (
	"path"
	"strconv"
	"strings"

	"github.com/dibuild/dib/compiler/plan"
)

// dnfBootstrap makes boot the "dnf" provider of an RPM distribution, with
// the package sets and repositories DIB's yum-minimal root.d uses.
func dnfBootstrap(boot *plan.Bootstrap, d distro, release, arch string, envb *envBuilder, files []plan.File) {
	boot.Provider, boot.Available = "dnf", true
	boot.Components, boot.Variant, boot.Keyrings, boot.Sources = nil, "", nil, nil
	if m, ok := envb.get("DIB_DISTRIBUTION_MIRROR"); ok && m != "" {
		boot.Mirror = m
	}
	n := &plan.DNF{Distro: d.name, Releasever: releasever(release), Arch: rpmArch(arch), RPMDBPath: "/var/lib/rpm"}
	if major, err := strconv.Atoi(n.Releasever); err == nil && major >= 10 {
		n.RPMDBPath = "/usr/lib/sysimage/rpm"
	}
	n.ReposDir, _ = envb.get("DIB_YUM_MINIMAL_BOOTSTRAP_REPOS")
	n.ExtraReposDir, _ = envb.get("DIB_YUM_MINIMAL_EXTRA_REPOS")
	if n.ReposDir == "" {
		n.RepoFiles = repoFiles(files, release)
	}

	if extra, _ := envb.get("DIB_YUM_MINIMAL_BOOTSTRAP_PACKAGES"); extra != "" {
		n.Bootstrap = append(n.Bootstrap, strings.Fields(extra)...)
	}
	n.Bootstrap = append(n.Bootstrap, "basesystem", "filesystem", "setup")
	switch d.name {
	case "fedora":
		n.Bootstrap = append(n.Bootstrap, "fedora-release-cloud", "fedora-release-common", "fedora-repos", "fedora-gpg-keys")
	case "centos":
		n.Bootstrap = append(n.Bootstrap, "centos-gpg-keys")
		if strings.Contains(release, "stream") {
			n.Bootstrap = append(n.Bootstrap, "centos-stream-release", "centos-stream-repos")
		} else {
			n.Bootstrap = append(n.Bootstrap, "centos-linux-release", "centos-linux-repos")
		}
	case "openeuler":
		n.Bootstrap = append(n.Bootstrap, "openEuler-release", "openEuler-repos", "openEuler-gpg-keys")
	}

	switch d.name {
	case "fedora", "openeuler":
		n.Manager = []string{"dnf", "dnf-plugins-core", "curl"}
	case "centos":
		n.Manager = []string{"dnf", "dnf-plugins-core", "curl", "libcurl"}
	default:
		n.Manager = []string{"yum"}
	}
	if d.name == "centos" || d.name == "fedora" {
		n.Manager = append(n.Manager, "glibc-minimal-langpack", "glibc-langpack-en")
	}
	n.Manager = append(n.Manager, "coreutils")
	n.Base = []string{"systemd", "passwd", "findutils", "sudo", "util-linux-ng", "systemd-udev"}
	boot.DNF = n
}

// repoFiles are the OS element's repository files for release: those of
// yum.repos.d/RELEASE/ when that directory exists, else yum.repos.d/*.repo.
func repoFiles(files []plan.File, release string) []plan.RepoFile {
	pick := func(dir string) []plan.RepoFile {
		var out []plan.RepoFile
		for _, f := range files {
			if path.Dir(f.Path) == dir && strings.HasSuffix(f.Path, ".repo") && f.SHA256 != "" {
				out = append(out, plan.RepoFile{Path: f.Path, SHA256: f.SHA256})
			}
		}
		return out
	}
	if out := pick("yum.repos.d/" + release); len(out) > 0 {
		return out
	}
	return pick("yum.repos.d")
}

// releasever is dnf's $releasever for a DIB_RELEASE: "9-stream" → "9".
func releasever(release string) string {
	v, _, _ := strings.Cut(release, "-")
	return v
}

// rpmArch is the RPM name of a DIB architecture.
func rpmArch(arch string) string {
	switch arch {
	case "amd64", "":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "ppc64el":
		return "ppc64le"
	}
	return arch
}
