package rootfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/runtime/chroot"
	"github.com/dibuild/dib/runtime/mount"
	"github.com/dibuild/dib/runtime/shell"
	"github.com/dibuild/dib/runtime/stack"
)

// DNFOptions describe one RPM-family bootstrap (the plan's "dnf" provider,
// DIB's yum-minimal root.d done by the runtime).
type DNFOptions struct {
	Plan *plan.DNF
	// Mirror replaces @MIRROR@ in RepoFiles.
	Mirror string
	// RepoFiles maps the plan's repository files (hook-tree paths) to
	// their content; used when Plan.ReposDir is empty.
	RepoFiles map[string][]byte
	// CacheDir is dnf's package cache on the host, shared by builds.
	CacheDir string
	// WorkDir is an empty scratch directory, removed by the caller.
	WorkDir string
	// Target is the directory to fill (TARGET_ROOT); it must be empty.
	Target string
	// HostResolvConf is copied into the tree for the bootstrap; default
	// /etc/resolv.conf.
	HostResolvConf string
}

// MirrorSuffix marks the tree's own repository files set aside while the
// bootstrap repositories (DIB_YUM_MINIMAL_BOOTSTRAP_REPOS) are in use;
// yum-minimal's cleanup.d puts them back.
const MirrorSuffix = ".USING_MIRROR"

// RunDNF bootstraps o.Target with the host's dnf and rpm, as DIB's
// yum-minimal does (see plan.DNF for the steps). Every mount is released
// before it returns; on error what was mounted is released by st too.
//
// It is long (about 140 lines) on purpose: it is yum-minimal's root.d
// script in its order, one stage per comment, every stage using the same
// HOME, mounts and cleanup stack; in parts the stages would only hand that
// state to one another, and the order DIB runs them in would be harder to
// compare with the script.
func RunDNF(ctx context.Context, r *shell.Runner, st *stack.Stack, o DNFOptions) (err error) {
	n := o.Plan
	if n == nil || o.Target == "" || o.WorkDir == "" || o.CacheDir == "" {
		return errors.New("rootfs: dnf bootstrap needs the plan, a target, a work and a cache directory")
	}
	paths := plan.DNFPaths{Target: o.Target, ReposDir: n.ReposDir, WorkDir: o.WorkDir, CacheDir: o.CacheDir}
	if paths.ReposDir == "" {
		paths.ReposDir = filepath.Join(o.WorkDir, "repos")
		if err := writeRepoFiles(paths.ReposDir, n.RepoFiles, o.RepoFiles, o.Mirror); err != nil {
			return err
		}
	}
	for _, d := range []string{o.CacheDir, filepath.Join(o.WorkDir, "rpms"), filepath.Join(o.WorkDir, "home")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// Debian's rpm keeps its database in ~/.rpmdb: dnf run with a HOME
	// of its own reads this ~/.rpmmacros, nobody else's is touched.
	home := filepath.Join(o.WorkDir, "home")
	if err := os.WriteFile(filepath.Join(home, ".rpmmacros"), []byte("%_dbpath "+n.RPMDBPath+"\n"), 0o644); err != nil {
		return err
	}
	env := dnfEnv(home)
	run := func(prefix string, argv ...string) error {
		_, err := r.Run(ctx, shell.Command{Argv: argv, Env: env, Prefix: "bootstrap/" + prefix})
		return err
	}

	// The rpm database, and the kernel filesystems rpm scriptlets need.
	mark := st.Mark()
	defer func() {
		if rerr := st.ReleaseTo(ctx, mark); rerr != nil && err == nil {
			err = rerr
		}
	}()
	if err := mountKernelFS(st, o.Target); err != nil {
		return err
	}
	if err := initRPMDB(o.Target, n.RPMDBPath); err != nil {
		return err
	}
	if err := run("rpm", "rpm", "--root", o.Target, "--dbpath", n.RPMDBPath, "--initdb"); err != nil {
		return err
	}
	if err := copyFile(resolvConf(o.HostResolvConf), filepath.Join(o.Target, "etc/resolv.conf"), 0o644); err != nil {
		return err
	}

	// The release packages.
	if err := run("dnf-download", n.DownloadArgv(paths)...); err != nil {
		return fmt.Errorf("downloading the release packages %s: %w", strings.Join(n.Bootstrap, " "), err)
	}
	rpms, _ := filepath.Glob(filepath.Join(o.WorkDir, "rpms", "*.rpm"))
	if len(rpms) == 0 {
		return fmt.Errorf("dnf download fetched none of %s", strings.Join(n.Bootstrap, " "))
	}
	if err := run("rpm", append(n.RPMInstallArgv(paths), rpms...)...); err != nil {
		return err
	}

	// The bootstrap repositories over the distribution's.
	repos := filepath.Join(o.Target, "etc/yum.repos.d")
	if err := os.MkdirAll(repos, 0o755); err != nil {
		return err
	}
	if n.ReposDir != "" {
		own, _ := filepath.Glob(filepath.Join(repos, "*.repo"))
		for _, f := range own {
			if err := os.Rename(f, f+MirrorSuffix); err != nil {
				return err
			}
		}
		if err := copyDir(n.ReposDir, repos); err != nil {
			return fmt.Errorf("DIB_YUM_MINIMAL_BOOTSTRAP_REPOS: %w", err)
		}
	}
	if n.ExtraReposDir != "" {
		if err := copyDir(n.ExtraReposDir, repos); err != nil {
			return fmt.Errorf("DIB_YUM_MINIMAL_EXTRA_REPOS: %w", err)
		}
	}
	if n.Distro == "openeuler" {
		// openEuler ships some repositories disabled (update, …).
		if err := editRepos(repos, func(s string) string { return strings.ReplaceAll(s, "enabled=0", "enabled=1") }); err != nil {
			return err
		}
	}

	// The package manager, by the host's dnf, checked with the tree's keys.
	hostKeys, treeKeys := "/etc/pki/rpm-gpg", filepath.Join(o.Target, "etc/pki/rpm-gpg")
	if err := editRepos(repos, func(s string) string { return strings.ReplaceAll(s, "file://"+hostKeys, "file://"+treeKeys) }); err != nil {
		return err
	}
	ierr := run("dnf", n.InstallRootArgv(paths)...)
	if err := editRepos(repos, func(s string) string { return strings.ReplaceAll(s, "file://"+treeKeys, "file://"+hostKeys) }); err != nil {
		return err
	}
	if ierr != nil {
		return fmt.Errorf("installing the package manager into the tree: %w", ierr)
	}

	// The base system, by the tree's own package manager, with the host's
	// package cache bound where the commands expect it.
	cacheIn := filepath.Join(o.Target, plan.ChrootDNFCache)
	if err := os.MkdirAll(cacheIn, 0o755); err != nil {
		return err
	}
	if err := mount.Bind(o.CacheDir, cacheIn, false, false); err != nil {
		return err
	}
	st.Push("unmount "+cacheIn, func(context.Context) error { return mount.UnmountAndRemove(cacheIn) })
	langs := filepath.Join(o.Target, "etc/rpm/macros.langs")
	if err := appendFile(langs, "%_install_langs C:C.UTF-8:en_US:en_US.UTF-8\n"); err != nil {
		return err
	}
	c := &chroot.Chroot{Root: o.Target}
	for _, cmd := range n.ChrootCommands() {
		if _, err := c.Run(ctx, r, chrootEnv(env), "bootstrap/chroot-"+cmd[0], cmd...); err != nil {
			return err
		}
	}

	// What yum-minimal leaves in a fresh tree.
	if err := os.WriteFile(filepath.Join(o.Target, "etc/resolv.conf"), []byte("# This file intentionally left blank\n\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.Target, "etc/locale.conf"), []byte("LANG=\"en_US.UTF-8\"\n"), 0o644); err != nil {
		return err
	}
	lt := filepath.Join(o.Target, "etc/localtime")
	_ = os.Remove(lt)
	if err := os.Symlink("/usr/share/zoneinfo/UTC", lt); err != nil {
		return err
	}
	return renameRPMNew(o.Target)
}

// dnfEnv is dib's environment for the host's dnf and rpm: HOME points at
// the bootstrap's own ~/.rpmmacros; TMPDIR is dropped, as DIB does.
func dnfEnv(home string) []string {
	var env []string
	for _, e := range os.Environ() {
		if strings.HasPrefix(e, "HOME=") || strings.HasPrefix(e, "TMPDIR=") {
			continue
		}
		env = append(env, e)
	}
	return append(env, "HOME="+home)
}

// chrootEnv is env for commands in the tree: HOME is the tree's root's.
func chrootEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, e := range env {
		if !strings.HasPrefix(e, "HOME=") {
			out = append(out, e)
		}
	}
	return append(out, "HOME=/root")
}

func resolvConf(p string) string {
	if p == "" {
		return "/etc/resolv.conf"
	}
	return p
}

// mountKernelFS mounts /proc, /sys (read-only: systemd's scriptlets then
// know they are in a container), /dev and /dev/pts in target.
func mountKernelFS(st *stack.Stack, target string) error {
	mounts := []struct {
		name  string
		mount func(dst string) error
	}{
		{"proc", func(dst string) error { return mount.FS("proc", "proc", dst, "", 0) }},
		{"sys", func(dst string) error { return mount.FS("sysfs", "sysfs", dst, "", syscall.MS_RDONLY) }},
		{"dev", func(dst string) error { return mount.Bind("/dev", dst, false, false) }},
		{"dev/pts", func(dst string) error { return mount.Bind("/dev/pts", dst, false, false) }},
	}
	for _, m := range mounts {
		dst := filepath.Join(target, m.name)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		if err := m.mount(dst); err != nil {
			return err
		}
		st.Push("unmount "+dst, func(context.Context) error { return mount.UnmountAll(dst) })
	}
	return nil
}

// initRPMDB makes the database directory; from CentOS 10 it lives in
// /usr/lib/sysimage/rpm with /var/lib/rpm a link to it.
func initRPMDB(target, dbpath string) error {
	if err := os.MkdirAll(filepath.Join(target, dbpath), 0o755); err != nil {
		return err
	}
	if dbpath == "/var/lib/rpm" {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(target, "var/lib"), 0o755); err != nil {
		return err
	}
	rel, err := filepath.Rel("/var/lib", dbpath)
	if err != nil {
		return err
	}
	return os.Symlink(rel, filepath.Join(target, "var/lib/rpm"))
}

// writeRepoFiles writes the OS element's repository files to dir with
// @MIRROR@ replaced.
func writeRepoFiles(dir string, files []plan.RepoFile, content map[string][]byte, mirror string) error {
	if len(files) == 0 {
		return errors.New("rootfs: no bootstrap repositories: set DIB_YUM_MINIMAL_BOOTSTRAP_REPOS or give the OS element yum.repos.d files")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		data, ok := content[f.Path]
		if !ok {
			return fmt.Errorf("rootfs: no content for repository file %s", f.Path)
		}
		s := strings.ReplaceAll(string(data), "@MIRROR@", strings.TrimSuffix(mirror, "/"))
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f.Path)), []byte(s), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func editRepos(dir string, edit func(string) string) error {
	files, _ := filepath.Glob(filepath.Join(dir, "*.repo"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if s := edit(string(data)); s != string(data) {
			if err := os.WriteFile(f, []byte(s), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// copyDir copies the regular files of src (not recursively) into dst.
func copyDir(src, dst string) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() && e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string, mode fs.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	_ = os.Remove(dst)
	return os.WriteFile(dst, data, mode)
}

func appendFile(p, s string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// renameRPMNew: nothing in a fresh tree was changed by hand, so an
// .rpmnew file is the configuration itself (DIB does the same).
func renameRPMNew(target string) error {
	return filepath.WalkDir(target, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && (p == filepath.Join(target, "proc") || p == filepath.Join(target, "sys") || p == filepath.Join(target, "dev")) {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() && strings.HasSuffix(p, ".rpmnew") {
			return os.Rename(p, strings.TrimSuffix(p, ".rpmnew"))
		}
		return nil
	})
}
