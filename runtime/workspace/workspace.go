// Package workspace creates the build directories of one dib build, laid
// out as diskimage-builder lays them out (lib/common-functions mk_build_dir
// and create_base):
//
//	$TMP_BUILD_DIR            dib_build.XXXXXXXX, a tmpfs when memory allows
//	$TMP_BUILD_DIR/mnt        TMP_MOUNT_PATH = TARGET_ROOT: the image tree
//	$TMP_BUILD_DIR/built      where the tree waits while the disk is made
//	$TMP_BUILD_DIR/hooks      TMP_HOOKS_PATH, the merged hook tree
//	$TMP_IMAGE_DIR            dib_image.XXXXXXXX, on disk (image files are big)
//	$TMP_IMAGE_DIR/image.raw  TMP_IMAGE_PATH
//
// As in DIB, the tree is built at TMP_MOUNT_PATH from root.d through
// post-root.d; after post-root.d DIB moves it to built/, mounts the new
// disk image at TMP_MOUNT_PATH and copies the tree into it, so the later
// phases (block-device.d … cleanup.d) find the same tree, now the image,
// at the same path. Tree returns that one path.
package workspace

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dibuild/dib/compiler/plan/dibenv"
	"github.com/dibuild/dib/runtime/mount"
	"github.com/dibuild/dib/runtime/stack"
)

// Options choose where the workspace goes.
type Options struct {
	// WorkDir is the parent of the build directories (DIB's TMP_DIR);
	// default os.TempDir().
	WorkDir string
	// NoTmpfs builds on disk (DIB's --no-tmpfs).
	NoTmpfs bool
	// MinTmpfsGB is DIB's --min-tmpfs; 0 means DIB's default
	// (dibenv.MinTmpfsGB).
	MinTmpfsGB int
	// MemTotalKB overrides /proc/meminfo's MemTotal (tests).
	MemTotalKB int64
	// Record, when set, is called with each directory's path before it
	// is created (the build's ledger), so a killed build's can be found.
	Record func(dir string) error
}

// Workspace is one build's directories.
type Workspace struct {
	BuildDir string // TMP_BUILD_DIR
	// MountPath is TMP_MOUNT_PATH, which DIB also gives root.d and
	// cleanup.d as TARGET_ROOT: the image tree (see Tree).
	MountPath string
	// BuiltPath is $TMP_BUILD_DIR/built, where the tree is moved while the
	// disk image is assembled (DIB's `mv mnt built`); it does not exist
	// otherwise.
	BuiltPath string
	HooksPath string // TMP_HOOKS_PATH
	ImageDir  string // TMP_IMAGE_DIR
	ImagePath string // TMP_IMAGE_PATH
	Tmpfs     bool   // BuildDir is a tmpfs
}

// Tree is where the image tree lives for every phase: TMP_MOUNT_PATH. It
// is a plain directory from the bootstrap to post-root.d and the mounted
// disk image (holding the same tree) from block-device.d on.
func (w *Workspace) Tree() string { return w.MountPath }

// UseTmpfs is DIB's tmpfs_check: a tmpfs takes half the RAM by default,
// so the machine needs at least twice the minimum tmpfs size.
func UseTmpfs(memTotalKB int64, noTmpfs bool, minTmpfsGB int) bool {
	if noTmpfs || memTotalKB <= 0 {
		return false
	}
	if minTmpfsGB <= 0 {
		minTmpfsGB = dibenv.MinTmpfsGB
	}
	return memTotalKB >= int64(minTmpfsGB)*2*1024*1024
}

// MemTotalKB parses MemTotal from a /proc/meminfo text; 0 if absent.
func MemTotalKB(meminfo []byte) int64 {
	sc := bufio.NewScanner(bytes.NewReader(meminfo))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// Create makes the workspace and pushes its removal on st: the release
// unmounts anything still mounted below it (never deleting through a
// bind mount) and removes the directories.
func Create(st *stack.Stack, o Options) (*Workspace, error) {
	parent := o.WorkDir
	if parent == "" {
		parent = os.TempDir()
	}
	// Absolute: mounts are found by path in the mount table (a relative
	// --work-dir left the tmpfs mounted and the directory behind), and
	// hooks that change directory still find TMP_BUILD_DIR.
	parent, err := filepath.Abs(parent)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	mem := o.MemTotalKB
	if mem == 0 {
		b, _ := os.ReadFile("/proc/meminfo")
		mem = MemTotalKB(b)
	}
	build, err := mkdirTemp(parent, "dib_build.", o.Record)
	if err != nil {
		return nil, err
	}
	st.Push("remove "+build, removeTree(build))
	w := &Workspace{BuildDir: build}
	if UseTmpfs(mem, o.NoTmpfs, o.MinTmpfsGB) {
		if err := mount.FS("tmpfs", "tmpfs", build, "mode=0755", 0); err != nil {
			return nil, err
		}
		w.Tmpfs = true
		st.Push("unmount tmpfs "+build, func(context.Context) error { return mount.UnmountAll(build) })
	}
	img, err := mkdirTemp(parent, "dib_image.", o.Record)
	if err != nil {
		return nil, err
	}
	st.Push("remove "+img, removeTree(img))
	w.ImageDir = img
	w.ImagePath = filepath.Join(img, "image.raw")
	w.MountPath = filepath.Join(build, "mnt")
	w.BuiltPath = filepath.Join(build, "built")
	w.HooksPath = filepath.Join(build, "hooks")
	for _, d := range []string{w.MountPath, w.HooksPath} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// mkdirTemp makes a new directory parent/prefix+random, calling record
// with its path first.
func mkdirTemp(parent, prefix string, record func(string) error) (string, error) {
	if record == nil {
		return os.MkdirTemp(parent, prefix)
	}
	for i := 0; i < 100; i++ {
		var b [6]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		dir := filepath.Join(parent, prefix+hex.EncodeToString(b[:]))
		if err := record(dir); err != nil {
			return "", err
		}
		err := os.Mkdir(dir, 0o700)
		if err == nil {
			return dir, nil
		}
		if !os.IsExist(err) {
			return "", err
		}
	}
	return "", fmt.Errorf("no free name for %s* in %s", prefix, parent)
}

func removeTree(dir string) stack.Release {
	return func(context.Context) error {
		if err := mount.UnmountAll(dir); err != nil {
			return fmt.Errorf("not removing %s: %w", dir, err)
		}
		return os.RemoveAll(dir)
	}
}

// Env returns DIB's workspace variables as KEY=VALUE, sorted.
func (w *Workspace) Env() []string {
	return []string{
		"TARGET_ROOT=" + w.MountPath,
		"TMP_BUILD_DIR=" + w.BuildDir,
		"TMP_HOOKS_PATH=" + w.HooksPath,
		"TMP_IMAGE_DIR=" + w.ImageDir,
		"TMP_IMAGE_PATH=" + w.ImagePath,
		"TMP_MOUNT_PATH=" + w.MountPath,
	}
}
