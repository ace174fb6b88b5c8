// Package cgroup gives a build a cgroup v2 group of its own. Every
// command the build starts is created inside it (clone3 with
// CLONE_INTO_CGROUP), and no process can leave it without privileges
// dib's commands do not use, so killing the group (cgroup.kill) stops
// everything the build started: daemons that left their session, and
// processes that cleared their environment (env -i) and so escape the
// environment-marker scan of runtime/shell.
//
// Where the host has no writable cgroup v2 hierarchy (a container without
// cgroup namespace delegation, cgroup v1 only), Create fails and the
// build falls back to the marker scan alone.
package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/dibuild/dib/runtime/mount"
)

// Group is one build's cgroup.
type Group struct {
	// Path is the group's directory in the cgroup v2 file system.
	Path string
	dir  *os.File
}

// PathFor returns the directory a group named name would have: a child of
// the cgroup this process is in. The name must be one path component.
func PathFor(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return "", fmt.Errorf("cgroup: bad group name %q", name)
	}
	mnt, root, err := v2Mount()
	if err != nil {
		return "", err
	}
	own, err := ownPath()
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(root, own)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("cgroup: this process's cgroup %s is outside the mounted hierarchy %s", own, root)
	}
	return filepath.Join(mnt, rel, name), nil
}

// Create makes the group at path (from PathFor) and opens it.
func Create(path string) (*Group, error) {
	if err := os.Mkdir(path, 0o755); err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	if _, err := os.Stat(filepath.Join(path, "cgroup.kill")); err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("cgroup: no cgroup.kill (Linux 5.14 or later needed): %w", err)
	}
	dir, err := os.Open(path)
	if err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	return &Group{Path: path, dir: dir}, nil
}

// FD is the directory descriptor to start commands in the group with
// (syscall.SysProcAttr's UseCgroupFD and CgroupFD).
func (g *Group) FD() int { return int(g.dir.Fd()) }

// Close kills what is left in the group, removes it and closes it.
func (g *Group) Close() error {
	_, err := Kill(g.Path)
	if cerr := g.dir.Close(); err == nil {
		err = cerr
	}
	return err
}

// killWait bounds how long Kill waits for the group to empty.
const killWait = 10 * time.Second

// Kill kills every process in the group at path, waits until it is
// empty, removes it and returns how many processes it held. A group
// that no longer exists is not an error.
func Kill(path string) (int, error) {
	procs, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("cgroup: %w", err)
	}
	n := bytes.Count(procs, []byte("\n"))
	if n > 0 {
		if err := os.WriteFile(filepath.Join(path, "cgroup.kill"), []byte("1"), 0); err != nil {
			return n, fmt.Errorf("cgroup: kill %s: %w", path, err)
		}
	}
	// The group can be removed once its last process is gone (reaped or
	// a zombie whose parent is outside it: the kernel unlinks exiting
	// tasks before they are reaped).
	deadline := time.Now().Add(killWait)
	for {
		err := syscall.Rmdir(path)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return n, nil
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return n, fmt.Errorf("cgroup: remove %s: %w", path, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// v2Mount finds the cgroup v2 mount: its mount point and the path of the
// hierarchy mounted there.
func v2Mount() (mountPoint, root string, err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", "", fmt.Errorf("cgroup: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, x := range fields {
			if x == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+1 >= len(fields) || fields[sep+1] != "cgroup2" {
			continue
		}
		return mount.Unescape(fields[4]), mount.Unescape(fields[3]), nil
	}
	if err := sc.Err(); err != nil {
		return "", "", fmt.Errorf("cgroup: %w", err)
	}
	return "", "", errors.New("cgroup: no cgroup v2 file system is mounted")
}

// ownPath is this process's cgroup v2 path ("0::/PATH" in /proc/self/cgroup).
func ownPath() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("cgroup: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			return p, nil
		}
	}
	return "", errors.New("cgroup: this process is in no cgroup v2 group")
}
