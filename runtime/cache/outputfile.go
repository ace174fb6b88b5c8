package cache

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// OutputFile opens the outputs payload of m and returns it with where the
// bytes of output rel (one of m.Outputs) are in it: the payload itself
// when it is the file (OutputPayload); a file kept whole in a plain tar
// stream is contiguous there, so a reader of it (an earlier
// qcow2 image whose clusters a conversion copies) needs no extraction.
// It fails for a compressed payload or a file stored sparse. The caller
// closes the file; its bytes are not checked here.
func (c *Cache) OutputFile(m *Meta, rel string) (f *os.File, off, size int64, err error) {
	if m.OutputsPayload() == OutputPayload && m.Outputs[0] == rel {
		// Kept as it is.
		f, err := os.Open(c.Path(m.Key, OutputPayload))
		if err != nil {
			return nil, 0, 0, err
		}
		return f, 0, m.Payload(OutputPayload).Size, nil
	}
	name := rel
	found := false
	for i, o := range m.Outputs {
		if o == rel {
			found = true
			if i < len(m.Stored) && m.Stored[i] != "" {
				name = m.Stored[i]
			}
		}
	}
	archive := m.Archive("outputs")
	if !found || strings.HasSuffix(archive, ".zst") {
		return nil, 0, 0, fmt.Errorf("entry %s holds no plain copy of %s", short(m.Key), rel)
	}
	f, err = os.Open(c.Path(m.Key, archive))
	if err != nil {
		return nil, 0, 0, err
	}
	cr := &countingReader{r: f}
	tr := tar.NewReader(cr)
	for {
		h, err := tr.Next()
		if err != nil {
			f.Close()
			if err == io.EOF {
				err = fmt.Errorf("%s is not in it", name)
			}
			return nil, 0, 0, fmt.Errorf("%s of %s: %w", archive, short(m.Key), err)
		}
		if path.Clean(h.Name) != path.Clean(name) {
			continue
		}
		if _, sparse := h.PAXRecords[paxSparse]; sparse || h.Typeflag != tar.TypeReg {
			f.Close()
			return nil, 0, 0, fmt.Errorf("%s of %s: %s is not stored whole", archive, short(m.Key), name)
		}
		// tar.Reader reads a header's blocks and no further: the count is
		// where the file's data starts.
		return f, cr.n, h.Size, nil
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
