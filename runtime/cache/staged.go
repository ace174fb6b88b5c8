package cache

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/dibuild/dib/runtime/directio"
)

// OutputPayload is the payload of an output step's entry whose one output
// is a regular file kept as it is, not in a tar stream: written while the
// step wrote the output (Stage, Writer.Adopt). Writing a tar output of
// 875 MB into the cache after the step read it back, hashed it and wrote
// it again: 2.0-2.9 s per image of bench/parallel.sh, on the step's slot.
const OutputPayload = "output"

// Staged is a payload file written before its entry exists, beside the
// file it copies (a tee of an output's stream): hashed and written around
// the page cache as it comes, then adopted by the step's entry or
// discarded.
type Staged struct {
	dir    string
	p      *payloadFile
	closed bool
	err    error // of Close
}

// Stage starts a payload file under the cache's tmp/ (a directory of this
// cache's owner, reclaimed like an entry being written if the build dies).
func (c *Cache) Stage() (*Staged, error) {
	dir, err := os.MkdirTemp(filepath.Join(c.Dir, "tmp"), c.tmpPrefix("stage."))
	if err != nil {
		return nil, err
	}
	p, err := createPayload(filepath.Join(dir, "payload"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &Staged{dir: dir, p: p}, nil
}

func (s *Staged) Write(b []byte) (int, error) { return s.p.Write(b) }

// Close ends the file (fsynced); Adopt or Discard follows.
func (s *Staged) Close() error {
	s.closed = true
	if err := s.p.Sync(); err != nil {
		s.p.Close()
		s.err = err
		return err
	}
	s.err = s.p.Close()
	return s.err
}

// Size is how many bytes were written.
func (s *Staged) Size() int64 { return s.p.Size() }

// Discard removes the staged file (ending its writing if Close was not
// called).
func (s *Staged) Discard() {
	if !s.closed {
		s.closed = true
		s.err = errors.New("discarded")
		s.p.Close()
	}
	os.RemoveAll(s.dir)
}

// Adopt makes the staged file, closed, payload name of the entry, with
// mode.
func (w *Writer) Adopt(name string, s *Staged, mode fs.FileMode) error {
	defer s.Discard()
	if !s.closed || s.err != nil {
		return fmt.Errorf("staged payload not complete: %v", s.err)
	}
	full := filepath.Join(w.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(s.dir, "payload"), full); err != nil {
		return err
	}
	w.meta.Files = append(w.meta.Files, File{Name: name, Size: s.p.Size(), SHA256: s.p.Sum(), Mode: uint32(mode.Perm())})
	return nil
}

// CopyOut writes payload file name of entry m to dst, a new file, checking
// its sha256 as it is read: on a mismatch dst is removed and the error
// wraps ErrCorrupt.
func (c *Cache) CopyOut(m *Meta, name, dst string) (err error) {
	want := m.Payload(name)
	if want == nil {
		return fmt.Errorf("%w: %s has no %s", ErrCorrupt, short(m.Key), name)
	}
	in, err := os.Open(c.Path(m.Key, name))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	defer in.Close()
	out, err := directio.Create(dst, fs.FileMode(want.Mode))
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	hr := newHashingReader(in)
	defer hr.Close()
	w := directio.NewWriter(out)
	if _, err := io.Copy(w, hr); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if got := hr.Sum(); got != want.SHA256 {
		return fmt.Errorf("%w: %s of %s: sha256 %s, recorded %s", ErrCorrupt, name, short(m.Key), short(got), short(want.SHA256))
	}
	return nil
}
