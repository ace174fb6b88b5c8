// Package output writes the tree-based outputs of a build: tar, tgz, docker
// (a `docker save` archive that `docker load` and `podman load` accept),
// aci, squashfs, and checksum files.
//
// Every output is written under a temporary name in its destination
// directory and renamed only when complete; on any failure the temporary
// file is removed, so a failed build never leaves a partial output.
package output

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/dibuild/dib/runtime/directio"
	"github.com/dibuild/dib/runtime/shell"
)

// TarArgv is DIB's tar command line (disk-image-create's tar output):
// numeric owners, extended attributes kept, the contents of /proc and /sys
// left out (the directories themselves stay).
//
// The archive is reproducible: entries sorted by name, no access or change
// times in the PAX headers, and modification times later than epoch
// (the plan's SOURCE_DATE_EPOCH) set to it, so the same tree always gives
// the same bytes.
func TarArgv(root, dest string, epoch int64, extra ...string) []string {
	argv := []string{"tar", "-C", root, "--numeric-owner", "--xattrs", "--xattrs-include=*",
		"--exclude=./proc/*", "--exclude=./sys/*",
		"--sort=name", "--mtime=@" + strconv.FormatInt(epoch, 10), "--clamp-mtime",
		"--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime"}
	argv = append(argv, extra...)
	return append(argv, "-cf", dest, ".")
}

// Atomic calls write with a temporary path in dest's directory and renames
// it to dest when write succeeds; otherwise the temporary file is removed.
func Atomic(dest string, write func(tmp string) error) (err error) {
	dir := filepath.Dir(dest)
	f, err := os.CreateTemp(dir, "."+filepath.Base(dest)+".dibtmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err = write(tmp); err != nil {
		return err
	}
	if err = os.Chmod(tmp, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, dest)
}

// Tar writes root as a GNU tar archive to dest. tar writes to a pipe and
// dib writes the file with O_DIRECT (runtime/directio): the archive is as
// large as the tree, and its writeback through the page cache would cost
// about 3 s of CPU per GB beside the next build.
//
// also, when not nil, gets a copy of the archive as it is written (the
// build cache's payload of the step, cache.Stage); its errors do not fail
// the output: it only stops getting the stream, and its own Close reports
// them.
func Tar(ctx context.Context, r *shell.Runner, root, dest string, epoch int64, also io.Writer) error {
	return Atomic(dest, func(tmp string) error {
		f, err := directio.OpenTrunc(tmp)
		if err != nil {
			return err
		}
		defer f.Close()
		w := &firstError{w: directio.NewWriter(f), also: also}
		if _, err := r.Run(ctx, shell.Command{Argv: TarArgv(root, "-", epoch), Prefix: "output/tar", Stdout: w}); err != nil {
			if w.err != nil {
				// tar only saw its pipe close (SIGPIPE): say why.
				return fmt.Errorf("output tar: writing %s: %w", dest, w.err)
			}
			return err
		}
		if err := w.w.Flush(); err != nil {
			return fmt.Errorf("output tar: writing %s: %w", dest, err)
		}
		return f.Close()
	})
}

// firstError keeps the first error of the writer it wraps, and copies
// what it wrote to also until also fails.
type firstError struct {
	w    *directio.Writer
	err  error
	also io.Writer
}

func (e *firstError) Write(b []byte) (int, error) {
	n, err := e.w.Write(b)
	if err != nil && e.err == nil {
		e.err = err
	}
	if e.also != nil && n > 0 {
		if _, aerr := e.also.Write(b[:n]); aerr != nil {
			e.also = nil
		}
	}
	return n, err
}

// ACIManifest is the manifest dib writes into an aci when the plan gives
// none (DIB only warns that the image is unusable without ACI_MANIFEST).
func ACIManifest(name, arch string) []byte {
	return []byte(fmt.Sprintf(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":%q,"labels":[{"name":"os","value":"linux"},{"name":"arch","value":%q}]}`+"\n", name, arch))
}

// ACI writes root as an App Container Image: the tree under rootfs/ and
// the manifest at the top, as DIB does with tar --transform and --append
// (but symlink targets are left alone: DIB's transform rewrites a link to
// "./x" into "rootfs/x", which points nowhere in the image).
func ACI(ctx context.Context, r *shell.Runner, root, dest string, manifest []byte, epoch int64) error {
	return Atomic(dest, func(tmp string) error {
		if _, err := r.Run(ctx, shell.Command{Argv: TarArgv(root, tmp, epoch, "--transform=s,^\\.,rootfs,S"), Prefix: "output/aci"}); err != nil {
			return err
		}
		mdir, err := os.MkdirTemp(filepath.Dir(dest), ".aci-manifest-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(mdir)
		if err := os.WriteFile(filepath.Join(mdir, "manifest"), manifest, 0o644); err != nil {
			return err
		}
		_, err = r.Run(ctx, shell.Command{Argv: []string{"tar", "-C", mdir, "--numeric-owner", "--owner=0", "--group=0", "--append", "-f", tmp, "manifest"}, Prefix: "output/aci"})
		return err
	})
}

// Checksum algorithms DIB writes (--checksum).
var algorithms = map[string]func() hash.Hash{"md5": md5.New, "sha256": sha256.New}

// Checksums writes PATH.ALG for each algorithm, in md5sum/sha256sum format
// ("HEX  NAME\n", NAME the base name so `sha256sum -c` works beside it),
// and returns the files written. The sums come from pre when it holds
// those of path as it is now (Precompute), else path is read; reused
// tells which.
func Checksums(path string, algs []string, pre *Precomputed) (files []string, reused bool, err error) {
	sums, reused := pre.sumsFor(path, algs)
	if !reused {
		hs, err := newHashes(algs)
		if err != nil {
			return nil, false, err
		}
		if err := sumFile(path, hs); err != nil {
			return nil, false, err
		}
		for _, h := range hs {
			sums = append(sums, hex.EncodeToString(h.Sum(nil)))
		}
	}
	for i, a := range algs {
		dest := path + "." + a
		line := sums[i] + "  " + filepath.Base(path) + "\n"
		if err := Atomic(dest, func(tmp string) error { return os.WriteFile(tmp, []byte(line), 0o644) }); err != nil {
			return files, reused, err
		}
		files = append(files, dest)
	}
	return files, reused, nil
}

func newHashes(algs []string) ([]hash.Hash, error) {
	hs := make([]hash.Hash, len(algs))
	for i, a := range algs {
		mk, ok := algorithms[a]
		if !ok {
			return nil, fmt.Errorf("checksum: unknown algorithm %q (md5, sha256)", a)
		}
		hs[i] = mk()
	}
	return hs, nil
}

// Squashfs writes root as an xz-compressed squashfs image. Every requested
// squashfs is made exactly once, whatever its position in the output list
// (DIB's loop reads the wrong index and makes none or two,
// dib-reference.md §2.2).
func Squashfs(ctx context.Context, r *shell.Runner, root, dest string) error {
	return Atomic(dest, func(tmp string) error {
		_, err := r.Run(ctx, shell.Command{Argv: []string{"mksquashfs", root, tmp, "-comp", "xz", "-noappend", "-quiet", "-no-progress"}, Prefix: "output/squashfs"})
		return err
	})
}
