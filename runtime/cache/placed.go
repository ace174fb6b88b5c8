package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Outputs restored (or written) into an output directory are stamped: the
// entry's key with the inode, size and change time of every file. A later
// apply whose outputs are all cached keeps a file whose stamp still
// matches instead of extracting it again, so a no-op rebuild reads no
// image. The change time moves on any write, chmod or rename, so a file
// edited or replaced since is restored from the cache.

type placed struct {
	Key   string `json:"key"`
	Path  string `json:"path"`
	Stamp string `json:"stamp"`
}

func (c *Cache) placedFile(path string) string {
	h := sha256.Sum256([]byte(path))
	return filepath.Join(c.Dir, "placed", hex.EncodeToString(h[:])+".json")
}

// stamp describes a file or directory tree by identity and change time.
func stamp(path string) (string, error) {
	var lines []string
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		lines = append(lines, fmt.Sprintf("%s %d %d %o %d %d.%d", strings.TrimPrefix(p, path), st.Dev, st.Ino, st.Mode, st.Size, st.Ctim.Sec, st.Ctim.Nsec))
		return nil
	})
	return strings.Join(lines, "\n"), err
}

// Place records that the outputs of m are in place in outDir.
func (c *Cache) Place(m *Meta, outDir string) error {
	for _, o := range m.Outputs {
		p := filepath.Join(outDir, o)
		s, err := stamp(p)
		if err != nil {
			return err
		}
		b, _ := json.Marshal(placed{Key: m.Key, Path: p, Stamp: s})
		if c.Record != nil {
			if err := c.Record(c.placedFile(p)); err != nil {
				return err
			}
		}
		if err := os.WriteFile(c.placedFile(p), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// InPlace reports whether every output of m is in outDir unchanged since
// Place recorded it.
func (c *Cache) InPlace(m *Meta, outDir string) bool {
	if len(m.Outputs) == 0 {
		return false
	}
	for _, o := range m.Outputs {
		p := filepath.Join(outDir, o)
		b, err := os.ReadFile(c.placedFile(p))
		if err != nil {
			return false
		}
		var pl placed
		if json.Unmarshal(b, &pl) != nil || pl.Key != m.Key || pl.Path != p {
			return false
		}
		s, err := stamp(p)
		if err != nil || s != pl.Stamp {
			return false
		}
	}
	return true
}
