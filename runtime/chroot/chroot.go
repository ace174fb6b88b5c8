// Package chroot prepares the image tree for DIB's in-chroot phases and
// undoes it, as diskimage-builder does around pre-install.d … finalise.d:
//
//   - /proc (proc), /sys (sysfs), /dev (bind of the host's) and /dev/pts
//     (bind) mounted in the tree;
//   - the host's resolv.conf swapped in, the image's put back at teardown;
//   - $TMP_HOOKS_PATH bound read-only at /tmp/in_target.d;
//   - /usr/sbin/policy-rc.d answering 101 so no package starts a daemon.
//
// Every acquisition pushes its release on the build's stack. Teardown
// first kills any process still running inside the tree, then unmounts.
package chroot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dibuild/dib/runtime/mount"
	"github.com/dibuild/dib/runtime/safepath"
	"github.com/dibuild/dib/runtime/shell"
	"github.com/dibuild/dib/runtime/stack"
)

// InTarget is where the hook tree appears inside the chroot.
const InTarget = "/tmp/in_target.d"

// PolicyRCD is the policy-rc.d installed for the build: 101 = action forbidden.
const PolicyRCD = "#!/bin/sh\n# Installed by dib for the duration of the build: no daemon starts in the chroot.\nexit 101\n"

// Chroot is an image tree prepared for in-chroot phases.
type Chroot struct {
	Root string // TARGET_ROOT
	// HooksPath is bound read-only at InTarget; empty: not bound.
	HooksPath string
	// HostResolvConf is the file copied in; default /etc/resolv.conf.
	HostResolvConf string
}

// Prepare mounts and swaps what the chroot phases need, pushing every
// release on st. On error, what was acquired is already on st.
func (c *Chroot) Prepare(st *stack.Stack) error {
	root := c.Root
	if fi, err := os.Stat(filepath.Join(root, "bin")); err != nil || !fi.IsDir() {
		return fmt.Errorf("chroot: %s holds no root filesystem (no /bin)", root)
	}
	mounts := []struct {
		name  string
		mount func(dst string) error
	}{
		{"proc", func(dst string) error { return mount.FS("proc", "proc", dst, "", 0) }},
		{"sys", func(dst string) error { return mount.FS("sysfs", "sysfs", dst, "", 0) }},
		{"dev", func(dst string) error { return mount.Bind("/dev", dst, false, false) }},
		{"dev/pts", func(dst string) error { return mount.Bind("/dev/pts", dst, false, false) }},
	}
	for _, m := range mounts {
		// The tree's symlinks resolve inside it: a /dev that links to a
		// host path gets the bind inside the tree, never on the host.
		dst, err := safepath.InRoot("chroot mount point", root, m.name)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		if err := m.mount(dst); err != nil {
			return err
		}
		st.Push("unmount "+dst, unmount(dst))
	}
	if err := c.swapResolvConf(st); err != nil {
		return err
	}
	if c.HooksPath != "" {
		dst, err := safepath.InRoot("chroot mount point", root, InTarget)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		if err := mount.Bind(c.HooksPath, dst, false, true); err != nil {
			return err
		}
		st.Push("unmount "+dst, func(context.Context) error { return mount.UnmountAndRemove(dst) })
	}
	if err := c.installPolicyRCD(st); err != nil {
		return err
	}
	// Pushed last so it runs first: nothing may hold the mounts.
	st.Push("kill processes in "+root, func(context.Context) error { return KillInside(root) })
	return nil
}

func unmount(dst string) stack.Release {
	return func(context.Context) error { return mount.UnmountAll(dst) }
}

// swapResolvConf moves the image's /etc/resolv.conf (file or symlink) aside
// as resolv.conf.ORIG, as DIB does, and copies the host's in.
func (c *Chroot) swapResolvConf(st *stack.Stack) error {
	host := c.HostResolvConf
	if host == "" {
		host = "/etc/resolv.conf"
	}
	etc, err := safepath.InRoot("image path", c.Root, "/etc")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return err
	}
	conf := filepath.Join(etc, "resolv.conf")
	orig := conf + ".ORIG"
	hadOrig := false
	if _, err := os.Lstat(conf); err == nil {
		if err := os.Rename(conf, orig); err != nil {
			return err
		}
		hadOrig = true
	}
	st.Push("restore "+conf, func(context.Context) error {
		if err := os.Remove(conf); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if hadOrig {
			return os.Rename(orig, conf)
		}
		return nil
	})
	data, err := os.ReadFile(host)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.WriteFile(conf, data, 0o644)
}

func (c *Chroot) installPolicyRCD(st *stack.Stack) error {
	sbin, err := safepath.InRoot("image path", c.Root, "/usr/sbin")
	if err != nil {
		return err
	}
	if _, err := os.Stat(sbin); err != nil {
		return nil // not a Debian-like tree
	}
	p := filepath.Join(sbin, "policy-rc.d")
	saved := p + ".dib-saved"
	had := false
	if _, err := os.Lstat(p); err == nil {
		if err := os.Rename(p, saved); err != nil {
			return err
		}
		had = true
	}
	st.Push("remove "+p, func(context.Context) error {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if had {
			return os.Rename(saved, p)
		}
		return nil
	})
	return os.WriteFile(p, []byte(PolicyRCD), 0o755)
}

// Argv returns the command line running cmd inside the chroot.
func (c *Chroot) Argv(cmd ...string) []string {
	return append([]string{"chroot", c.Root}, cmd...)
}

// Run runs cmd inside the chroot with exactly env, through r.
func (c *Chroot) Run(ctx context.Context, r *shell.Runner, env []string, prefix string, cmd ...string) (shell.Result, error) {
	return r.Run(ctx, shell.Command{Argv: c.Argv(cmd...), Env: env, Prefix: prefix, Dir: "/"})
}

// KillInside kills every process whose root directory is root or below it
// (daemons a script started despite policy-rc.d) and waits for them to go.
func KillInside(root string) error {
	root = filepath.Clean(root)
	for attempt := 0; attempt < 50; attempt++ {
		pids := Inside(root)
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if pids := Inside(root); len(pids) > 0 {
		return fmt.Errorf("processes still running in %s: %v", root, pids)
	}
	return nil
}

// Inside lists the live processes whose root is root or below it.
func Inside(root string) []int {
	root = filepath.Clean(root)
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		r, err := os.Readlink("/proc/" + e.Name() + "/root")
		if err != nil {
			continue
		}
		if r == root || strings.HasPrefix(r, root+"/") {
			if st, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
				if f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:])); len(f) > 0 && f[0] == "Z" {
					continue
				}
			}
			pids = append(pids, pid)
		}
	}
	return pids
}
