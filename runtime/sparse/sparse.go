// Package sparse finds the data of a sparse file: the byte ranges that
// lseek(SEEK_DATA/SEEK_HOLE) reports as data. Everything else reads as
// zeros. Disk images are mostly holes (the Debian VM example's raw image:
// 4 GiB, 1 GB of data), so the code that reads a whole image (qcow2
// conversion, the raw output's copy, checksums, the free-space scan)
// reads only these ranges.
package sparse

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// Extent is a byte range [Start, End) of a file that may hold data.
type Extent struct{ Start, End int64 }

// Extents lists the data ranges of the first size bytes of f, each widened
// to multiples of align (a power of two; 1 for none) and clamped to size,
// overlapping ones merged. A file whose filesystem cannot tell holes is
// one extent: all of it is read as data.
func Extents(f *os.File, size, align int64) ([]Extent, error) {
	if size <= 0 {
		return nil, nil
	}
	all := []Extent{{0, size}}
	fd := int(f.Fd())
	var out []Extent
	for off := int64(0); off < size; {
		d, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) { // no data after off
			break
		}
		if err != nil {
			return all, nil
		}
		if d >= size {
			break
		}
		h, err := unix.Seek(fd, d, unix.SEEK_HOLE)
		if err != nil {
			return all, nil
		}
		h = min(h, size)
		s, e := d&^(align-1), min((h+align-1)&^(align-1), size)
		if n := len(out); n > 0 && out[n-1].End >= s {
			out[n-1].End = max(out[n-1].End, e)
		} else {
			out = append(out, Extent{s, e})
		}
		off = h
	}
	return out, nil
}
