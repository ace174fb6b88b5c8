package output

import (
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"

	"github.com/dibuild/dib/runtime/shell"
)

// TarGz writes root as a gzip-compressed tar (DIB's tgz: the tar, then
// gzip -9). The intermediate tar lives beside dest and is removed.
func TarGz(ctx context.Context, r *shell.Runner, root, dest string, epoch int64) error {
	return Atomic(dest, func(tmp string) error {
		raw, err := os.CreateTemp(filepath.Dir(dest), ".dib-tgz-tar-")
		if err != nil {
			return err
		}
		raw.Close()
		defer os.Remove(raw.Name())
		if _, err := r.Run(ctx, shell.Command{Argv: TarArgv(root, raw.Name(), epoch), Prefix: "output/tgz"}); err != nil {
			return err
		}
		return gzipFile(ctx, raw.Name(), tmp)
	})
}

func gzipFile(ctx context.Context, src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_TRUNC|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	zw, err := gzip.NewWriterLevel(out, gzip.BestCompression)
	if err != nil {
		out.Close()
		return err
	}
	if _, err := io.Copy(zw, ctxReader{ctx, in}); err != nil {
		out.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// ctxReader stops a long copy when the build is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
