package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/runtime/lock"
	"github.com/dibuild/dib/runtime/mount"
	"github.com/dibuild/dib/runtime/safepath"
)

// The shared apt cache. DIB's dpkg element binds $DIB_IMAGE_CACHE/apt on
// the tree's /var/cache/apt/archives from root.d on (50-shared-apt-cache),
// so packages are downloaded once per machine, not once per build, and
// never become part of the image. dib binds the same kind of directory (one
// per family, suite and architecture, the one mmdebstrap fills during the
// bootstrap) for every phase from root.d to finalise.d and for the packages
// step, on whichever tree the phase runs on (the build tree, later the
// mounted image). It is unbound whenever the chroot is torn down: before
// the tree is measured or copied into the image, before cleanup.d and
// before any output is written, so no archive ever enters an image.
// DIB_APT_LOCAL_CACHE=0 turns it off, as in DIB.

// AptCacheDir returns the directory holding the downloaded .deb files of
// the plan's apt-based tree, or "" when the plan has none (no mmdebstrap
// bootstrap) or DIB_APT_LOCAL_CACHE=0. (The step cache keeps it out of
// its snapshots.)
func (b *Build) AptCacheDir() (string, error) {
	dir, err := b.aptCacheBase()
	if err != nil || dir == "" {
		return "", err
	}
	return b.aptSlot(dir)
}

// aptCacheBase is the apt cache directory of the plan's bootstrap before
// a slot is taken ("" when the plan has none or DIB_APT_LOCAL_CACHE=0).
func (b *Build) aptCacheBase() (string, error) {
	if b.envValue("DIB_APT_LOCAL_CACHE") == "0" {
		return "", nil
	}
	for i := range b.Plan.Steps {
		if bs := b.Plan.Steps[i].Bootstrap; bs != nil && bs.Provider == "mmdebstrap" {
			return aptCacheDir(bs, b.Options.ImageCache)
		}
	}
	return "", nil
}

// aptSlot returns the copy of the apt cache dir this build uses, held
// until the build ends. apt locks its archives directory for as long as it
// downloads and fails at once when another apt holds it, so two builds
// running at once (a multi-image apply, or two dib commands) cannot share
// one: the first takes dir itself, the next dir.1, and so on, each with a
// lock file beside it. A copy starts with hard links to what dir holds and
// gives back, when the build ends, what it downloaded.
func (b *Build) aptSlot(dir string) (string, error) {
	if b.aptSlots == nil {
		b.aptSlots = map[string]string{}
	}
	if s, ok := b.aptSlots[dir]; ok {
		return s, nil
	}
	if b.Options.DryRun {
		return dir, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("apt cache: %w", err)
	}
	for n := 0; n < 64; n++ {
		slot := dir
		if n > 0 {
			slot = fmt.Sprintf("%s.%d", dir, n)
		}
		lk, err := lock.Acquire(context.Background(), slot+".lock", lock.Options{NoWait: true, RemoveOnRelease: true, Holder: "dib apply of " + b.Plan.Image.Name})
		if errors.Is(err, lock.ErrBusy) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("apt cache: %w", err)
		}
		if slot != dir {
			linkDebs(dir, slot)
			fmt.Fprintf(b.Log, "dib: apt cache %s is in use by another build: this one uses %s\n", dir, slot)
		}
		b.Stack.Push("release apt cache "+slot, func(context.Context) error {
			if slot != dir {
				linkDebs(slot, dir)
			}
			return lk.Release()
		})
		b.aptSlots[dir] = slot
		return slot, nil
	}
	return "", fmt.Errorf("apt cache: %s and its 63 copies are all in use", dir)
}

// linkDebs hard-links the package files of from that to lacks (best
// effort: the cache only saves downloads).
func linkDebs(from, to string) {
	debs, _ := filepath.Glob(filepath.Join(from, "*.deb"))
	if len(debs) == 0 {
		return
	}
	if err := os.MkdirAll(filepath.Join(to, "partial"), 0o755); err != nil {
		return
	}
	for _, d := range debs {
		dst := filepath.Join(to, filepath.Base(d))
		if _, err := os.Lstat(dst); err == nil {
			continue
		}
		_ = os.Link(d, dst)
	}
}

// aptCacheDir is the cache directory of one bootstrap under DIB_IMAGE_CACHE
// (one directory per family, release and arch, whatever the release says).
func aptCacheDir(bs *plan.Bootstrap, imageCache string) (string, error) {
	name := strings.Join([]string{bs.Family, bs.Suite, bs.Arch}, "-")
	if err := safepath.Name("apt cache name (family-release-arch)", name); err != nil {
		return "", err
	}
	return safepath.Under("apt cache", imageCache, filepath.Join("apt", name))
}

// bindAptCache binds the apt cache on b.Tree()'s /var/cache/apt/archives
// unless it is bound already. A tree without /var/cache/apt (not an apt
// system) gets nothing.
func (b *Build) bindAptCache() error {
	if b.aptOn || b.Options.DryRun {
		return nil
	}
	dir, err := b.AptCacheDir()
	if err != nil || dir == "" {
		return err
	}
	if fi, err := os.Stat(filepath.Join(b.Tree(), "var/cache/apt")); err != nil || !fi.IsDir() {
		return nil
	}
	dst, err := safepath.Under("apt cache mount point", b.Tree(), "var/cache/apt/archives")
	if err != nil {
		return err
	}
	for _, d := range []string{dir, filepath.Join(dir, "partial"), dst} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("apt cache: %w", err)
		}
	}
	mark := b.Stack.Mark()
	if err := mount.Bind(dir, dst, false, false); err != nil {
		return fmt.Errorf("apt cache: %w", err)
	}
	b.Stack.Push("unmount apt cache "+dst, func(context.Context) error { return mount.UnmountAll(dst) })
	b.aptOn, b.aptMark = true, mark
	fmt.Fprintf(b.Log, "dib: apt cache %s bound on %s\n", dir, dst)
	return b.bindInitramfsCache()
}

// initramfsCacheDir is DIB_IMAGE_CACHE/initramfs/NAME ("" without an apt
// cache).
func (b *Build) initramfsCacheDir() (string, error) {
	aptDir, err := b.aptCacheBase()
	if err != nil || aptDir == "" {
		return "", err
	}
	return safepath.Under("initramfs cache", b.Options.ImageCache, filepath.Join("initramfs", filepath.Base(aptDir)))
}

// InitramfsCacheMount is where the initramfs cache is bound in the tree,
// beside the apt cache and with its lifetime: the dpkg element's
// post-install.d/99-update-initramfs reuses an initramfs built from the
// same inputs (its key: the kernel version, the installed packages'
// versions, the kernel's module tree and the configuration, hooks and
// /etc files initramfs-tools reads) instead of running mkinitramfs again.
// The directory is made for the mount and removed with it, so nothing of
// it enters the image.
const InitramfsCacheMount = "var/cache/dib-initramfs"

// bindInitramfsCache binds DIB_IMAGE_CACHE/initramfs/NAME (NAME as the
// apt cache's: family-release-arch) on InitramfsCacheMount. Builds running
// at once share it, whatever apt cache slot each holds (aptSlot): its
// entries are written under a temporary name and renamed, and a copy out
// of it is checked against its sha256. (Per slot, the first -j 2 run
// after a -j 1 one rebuilt an initramfs the cache had: 23 s of
// bench/parallel.sh.)
func (b *Build) bindInitramfsCache() error {
	dir, err := b.initramfsCacheDir()
	if err != nil || dir == "" {
		return err
	}
	dst, err := safepath.Under("initramfs cache mount point", b.Tree(), InitramfsCacheMount)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(dst); err == nil {
		return nil // not ours: leave it
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("initramfs cache: %w", err)
	}
	if err := os.Mkdir(dst, 0o755); err != nil {
		return fmt.Errorf("initramfs cache: %w", err)
	}
	if err := mount.Bind(dir, dst, false, false); err != nil {
		os.Remove(dst)
		return fmt.Errorf("initramfs cache: %w", err)
	}
	b.Stack.Push("unmount initramfs cache "+dst, func(context.Context) error { return mount.UnmountAndRemove(dst) })
	return nil
}
