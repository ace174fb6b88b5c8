// Package inspect opens a built image for a look inside (`dib shell`): a
// tree (directory), an archive of one (tar, tgz, tar.zst …) or a disk image
// (raw or qcow2). A disk image is assembled as the runtime does it, in user
// space: a read-only loop device over each partition's byte range (the
// partition table read with sfdisk), no device-mapper, no udev; its root
// filesystem (the partition holding etc/os-release) is mounted read-only,
// with the others at their places in its etc/fstab. Trees and disk images
// are seen through an overlay whose writable layer is a tmpfs, so nothing
// done inside reaches the image; an archive is extracted into the session's
// directory. The tree is then prepared for a chroot (proc, sys, dev,
// resolv.conf, no daemon starts) as for a build's chroot phases.
//
// Everything acquired goes on a cleanup stack released by Close, and each
// session records its directory and its processes in a ledger under its
// own lock before making them: a session killed with SIGKILL is reclaimed
// by the next Open (its processes killed, what is mounted under its
// directory unmounted, its loop devices detached, the directory removed).
// Callers run in a private mount namespace (runtime/ns), so a killed
// session's mounts die with it.
package inspect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/dibuild/dib/runtime"
	"github.com/dibuild/dib/runtime/chroot"
	"github.com/dibuild/dib/runtime/ledger"
	"github.com/dibuild/dib/runtime/mount"
	"github.com/dibuild/dib/runtime/stack"
	"github.com/dibuild/dib/spec/diag"
	"golang.org/x/sys/unix"
)

// Options say what to open.
type Options struct {
	// Target is a directory, an archive or a raw/qcow2 disk image.
	Target string
	// WorkDir is the parent of the sessions' directories (default: the
	// system temp dir).
	WorkDir string
	// Log receives what was reclaimed of killed sessions (nil: nothing).
	Log io.Writer
}

// Session is an opened image.
type Session struct {
	// Root is the directory to chroot into.
	Root string
	// Kind is "tree", "archive" or "disk".
	Kind string
	// Marker is KEY=VALUE to put in the environment of every process run
	// inside, so a killed session's processes are found.
	Marker string
	// Notes say what was left out (swap, LVM, filesystems not in fstab).
	Notes []string

	st      stack.Stack
	ldg     *ledger.Ledger
	release func()
	dir     string
}

// Close releases everything the session acquired, newest first: the
// processes left inside, the chroot's mounts, the overlay, the
// filesystems, the loop devices, the directory, the ledger, the lock.
func (s *Session) Close(ctx context.Context) error {
	err := s.st.Release(context.WithoutCancel(ctx))
	if err == nil {
		err = s.ldg.Close()
	}
	s.release()
	if err == nil {
		err = os.RemoveAll(s.dir)
	}
	return err
}

// Open opens o.Target. On error nothing it acquired is left.
func Open(ctx context.Context, o Options) (s *Session, err error) {
	kind, err := kindOf(o.Target)
	if err != nil {
		return nil, err
	}
	base := o.WorkDir
	if base == "" {
		base = os.TempDir()
	}
	base = filepath.Join(base, "dib-shell")
	if err := os.MkdirAll(base, 0o700); err != nil {
		return nil, err
	}
	reclaimKilled(ctx, base, o.Log)
	dir, err := os.MkdirTemp(base, "session.")
	if err != nil {
		return nil, err
	}
	release, err := runtime.LockOutputDir(ctx, dir, true, "dib shell of "+o.Target, nil)
	if err != nil {
		os.Remove(dir)
		return nil, err
	}
	id := filepath.Base(dir)
	ldg, err := ledger.Open(runtime.StateDir(dir), id)
	if err != nil {
		release()
		os.RemoveAll(dir)
		return nil, err
	}
	s = &Session{Kind: kind, Marker: "DIB_SHELL_SESSION=" + id, ldg: ldg, release: release, dir: dir}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close(ctx))
			s = nil
		}
	}()
	work := filepath.Join(dir, "work")
	for _, e := range []ledger.Entry{{Kind: ledger.Dir, Path: work}, {Kind: ledger.Processes, Marker: s.Marker}} {
		if err := ldg.Record(e); err != nil {
			return nil, err
		}
	}
	if err := os.Mkdir(work, 0o700); err != nil {
		return nil, err
	}
	s.st.Push("remove "+work, func(context.Context) error { return os.RemoveAll(work) })
	s.Root = filepath.Join(work, "root")
	if err := os.Mkdir(s.Root, 0o755); err != nil {
		return nil, err
	}
	switch kind {
	case "tree":
		err = s.overlay(work, o.Target)
	case "archive":
		err = run(ctx, "tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf", o.Target, "-C", s.Root)
	case "qcow2":
		raw := filepath.Join(work, "disk.raw")
		if err = run(ctx, "qemu-img", "convert", "-O", "raw", o.Target, raw); err == nil {
			err = s.disk(ctx, work, raw)
		}
		s.Kind = "disk"
	default:
		err = s.disk(ctx, work, o.Target)
	}
	if err != nil {
		return nil, err
	}
	s.st.Push("stop the processes left in "+s.Root, func(context.Context) error { return chroot.KillInside(s.Root) })
	c := &chroot.Chroot{Root: s.Root}
	if err := c.Prepare(&s.st); err != nil {
		return nil, err
	}
	return s, nil
}

// kindOf tells a tree, an archive, a qcow2 image and a raw image apart.
func kindOf(target string) (string, error) {
	st, err := os.Stat(target)
	if err != nil {
		return "", diag.Errorf("cannot open %s: %v", target, err).WithHint("give a built tree (directory), an archive (tar, tgz, tar.zst) or a disk image (raw, qcow2)")
	}
	if st.IsDir() {
		return "tree", nil
	}
	f, err := os.Open(target)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("QFI\xfb")):
		return "qcow2", nil
	case len(head) >= 262 && string(head[257:262]) == "ustar",
		bytes.HasPrefix(head, []byte{0x1f, 0x8b}), bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}),
		bytes.HasPrefix(head, []byte("\xfd7zXZ\x00")), bytes.HasPrefix(head, []byte("BZh")):
		return "archive", nil
	case st.Size() >= 1<<20 && st.Size()%512 == 0:
		return "raw", nil
	}
	return "", diag.Errorf("%s is neither a tree, an archive nor a disk image dib can open", target).
		WithHint("give a built tree (directory), an archive (tar, tgz, tar.zst) or a disk image (raw, qcow2); squashfs and vhd are not supported")
}

// overlay mounts lower, read-only, under a writable tmpfs layer at s.Root.
func (s *Session) overlay(work, lower string) error {
	rw := filepath.Join(work, "rw")
	if err := os.Mkdir(rw, 0o700); err != nil {
		return err
	}
	if err := mount.FS("tmpfs", "dib-shell", rw, "mode=0700", 0); err != nil {
		return fmt.Errorf("tmpfs for the overlay: %w", err)
	}
	s.st.Push("unmount "+rw, unmount(rw))
	upper, wd := filepath.Join(rw, "upper"), filepath.Join(rw, "work")
	for _, d := range []string{upper, wd} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	abs, err := filepath.Abs(lower)
	if err != nil {
		return err
	}
	opts := "lowerdir=" + abs + ",upperdir=" + upper + ",workdir=" + wd
	if err := mount.FS("overlay", "dib-shell", s.Root, opts, 0); err != nil {
		return fmt.Errorf("overlay over %s: %w", lower, err)
	}
	s.st.Push("unmount "+s.Root, unmount(s.Root))
	return nil
}

func unmount(dir string) stack.Release {
	return func(context.Context) error { return mount.UnmountAll(dir) }
}

// partition is a byte range of a disk image.
type partition struct {
	offset, size int64
	fsType       string // blkid's TYPE
	ids          []string
	dev, dir     string
}

// disk mounts a raw image's filesystems read-only under an overlay.
func (s *Session) disk(ctx context.Context, work, image string) error {
	parts, err := partitions(ctx, image)
	if err != nil {
		return err
	}
	partsDir := filepath.Join(work, "parts")
	var root *partition
	for i := range parts {
		p := &parts[i]
		loop, err := attach(image, p.offset, p.size)
		if err != nil {
			return err
		}
		p.dev = loop.Name()
		info, _ := output(ctx, "blkid", "-p", "-o", "export", p.dev)
		for _, l := range strings.Split(info, "\n") {
			k, v, _ := strings.Cut(l, "=")
			switch k {
			case "TYPE":
				p.fsType = v
			case "LABEL", "UUID":
				p.ids = append(p.ids, k+"="+v)
			}
		}
		err = func() error {
			defer loop.Close() // from now on the mount holds the device; unmounted, it detaches itself
			return s.mountPart(p, i, partsDir)
		}()
		if err != nil {
			return err
		}
		if p.dir == "" {
			continue
		}
		if _, err := os.Lstat(filepath.Join(p.dir, "etc/os-release")); err == nil && root == nil {
			root = p
		}
	}
	return s.assemble(image, work, parts, root)
}

// mountPart mounts partition i read-only under partsDir (p.dir), or
// leaves p.dir empty and says why in s.Notes.
func (s *Session) mountPart(p *partition, i int, partsDir string) error {
	switch p.fsType {
	case "":
		return nil
	case "swap":
		s.Notes = append(s.Notes, fmt.Sprintf("partition %d: swap, not used", i+1))
		return nil
	case "LVM2_member":
		s.Notes = append(s.Notes, fmt.Sprintf("partition %d: an LVM physical volume; its volumes need device-mapper, which dib does not use: not mounted", i+1))
		return nil
	}
	p.dir = filepath.Join(partsDir, fmt.Sprint(i+1))
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		p.dir = ""
		return err
	}
	data := ""
	if strings.HasPrefix(p.fsType, "ext") {
		data = "noload" // a journal to replay is left alone: read-only means read-only
	}
	if err := mount.FS(p.fsType, p.dev, p.dir, data, 1 /* MS_RDONLY */); err != nil {
		s.Notes = append(s.Notes, fmt.Sprintf("partition %d (%s) not mounted: %v", i+1, p.fsType, err))
		p.dir = ""
		return nil
	}
	s.st.Push("unmount "+p.dir, unmount(p.dir))
	return nil
}

// assemble puts the root partition under the overlay and the others of
// its fstab at their places.
func (s *Session) assemble(image, work string, parts []partition, root *partition) error {
	if root == nil {
		return diag.Errorf("%s: no partition holds a root filesystem (etc/os-release)", image).
			WithHint("dib shell opens images with plain partitions (GPT or MBR) or a bare filesystem; LVM volumes are not supported")
	}
	if err := s.overlay(work, root.dir); err != nil {
		return err
	}
	fstab, _ := os.ReadFile(filepath.Join(root.dir, "etc/fstab"))
	for _, l := range strings.Split(string(fstab), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || strings.HasPrefix(f[0], "#") || f[1] == "/" || !strings.HasPrefix(f[1], "/") {
			continue
		}
		for i := range parts {
			p := &parts[i]
			if p == root || p.dir == "" || !matches(p, f[0]) {
				continue
			}
			dst := filepath.Join(s.Root, filepath.Clean(f[1]))
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
			if err := mount.Bind(p.dir, dst, false, true); err != nil {
				return err
			}
			s.st.Push("unmount "+dst, unmount(dst))
		}
	}
	return nil
}

// matches reports whether an fstab source names partition p.
func matches(p *partition, spec string) bool {
	for _, id := range p.ids {
		if strings.EqualFold(id, spec) {
			return true
		}
	}
	return false
}

// partitions reads image's partition table with sfdisk; an image without
// one is one filesystem.
func partitions(ctx context.Context, image string) ([]partition, error) {
	st, err := os.Stat(image)
	if err != nil {
		return nil, err
	}
	out, err := output(ctx, "sfdisk", "--json", image)
	if err != nil || strings.TrimSpace(out) == "" {
		return []partition{{offset: 0, size: st.Size()}}, nil
	}
	var t struct {
		PartitionTable struct {
			SectorSize int64 `json:"sectorsize"`
			Partitions []struct {
				Start int64 `json:"start"`
				Size  int64 `json:"size"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal([]byte(out), &t); err != nil {
		return nil, fmt.Errorf("sfdisk --json %s: %w", image, err)
	}
	ss := t.PartitionTable.SectorSize
	if ss == 0 {
		ss = 512
	}
	var parts []partition
	for _, p := range t.PartitionTable.Partitions {
		parts = append(parts, partition{offset: p.Start * ss, size: p.Size * ss})
	}
	return parts, nil
}

func run(ctx context.Context, argv ...string) error {
	_, err := output(ctx, argv...)
	return err
}

// output runs argv and returns its standard output; its standard error
// goes into the error.
func output(ctx context.Context, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// reclaimKilled reclaims what killed sessions under base left: a session
// whose lock is free is not running.
func reclaimKilled(ctx context.Context, base string, log io.Writer) {
	ents, _ := os.ReadDir(base)
	for _, e := range ents {
		dir := filepath.Join(base, e.Name())
		obs := runtime.ObserverFunc(func(ev runtime.Event) {
			if ev.Type == runtime.Reclaimed && log != nil {
				fmt.Fprintf(log, "dib shell: a killed session (%s) left %d things; reclaimed: %s\n", ev.Build, len(ev.Reclaimed), strings.Join(ev.Reclaimed, ", "))
			}
		})
		release, err := runtime.LockOutputDir(ctx, dir, true, "dib shell (reclaiming)", obs)
		if err != nil {
			continue // a running session
		}
		release()
		os.RemoveAll(dir)
	}
}

// attach attaches a read-only loop device over size bytes of file at
// offset, with autoclear: the device detaches itself when the last user
// closes it. The caller holds the returned device open until a mount
// holds it (or closes it to detach); a killed dib so leaves no loop
// device, whatever the moment.
func attach(file string, offset, size int64) (*os.File, error) {
	img, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer ctl.Close()
	cfg := unix.LoopConfig{Fd: uint32(img.Fd())}
	cfg.Info.Offset, cfg.Info.Sizelimit = uint64(offset), uint64(size)
	cfg.Info.Flags = unix.LO_FLAGS_READ_ONLY | unix.LO_FLAGS_AUTOCLEAR
	copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], file)
	for try := 0; ; try++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("no free loop device: %w", err)
		}
		dev, err := os.OpenFile(fmt.Sprintf("/dev/loop%d", n), os.O_RDONLY, 0)
		if err != nil {
			return nil, err
		}
		err = unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
		if err == nil {
			return dev, nil
		}
		dev.Close()
		if !errors.Is(err, unix.EBUSY) || try == 10 { // EBUSY: another process took it first
			return nil, fmt.Errorf("loop device over %s: %w", file, err)
		}
	}
}
