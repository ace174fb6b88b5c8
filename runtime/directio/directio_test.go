package directio

import (
	"bytes"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// diskDir is a temporary directory on a disk filesystem that takes
// O_DIRECT, or the test is skipped.
func diskDir(t *testing.T) string {
	dir := t.TempDir()
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Type == unix.TMPFS_MAGIC || fs.Type == unix.OVERLAYFS_SUPER_MAGIC {
		t.Skipf("%s is not on a disk filesystem", dir)
	}
	return dir
}

// resident counts the pages of name that are in the page cache.
func resident(t *testing.T, name string) (int, int) {
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	size := int(st.Size())
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	page := os.Getpagesize()
	vec := make([]byte, (size+page-1)/page)
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(size), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal(e)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n, len(vec)
}

// TestFileBypassesPageCache: whole blocks go to the disk directly, so
// they are not left in the page cache for a writeback to pay for; only
// the last partial block is.
func TestFileBypassesPageCache(t *testing.T) {
	name := filepath.Join(diskDir(t), "f")
	f, err := Create(name, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if !f.Direct() {
		t.Skip("the filesystem refuses O_DIRECT")
	}
	b := Buffer(4<<20 + 100)
	for i := range b {
		b[i] = byte(i)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if n, of := resident(t, name); n > 1 {
		t.Fatalf("%d of %d pages are in the page cache; want at most the last one", n, of)
	}
	got, _ := os.ReadFile(name)
	if !bytes.Equal(got, b) {
		t.Fatal("read back something else")
	}
}

// TestCopySparse copies files with data and holes at block-aligned and
// unaligned places: the same bytes and size, holes kept, nothing of the
// copy's data left in the page cache but a partial last block.
func TestCopySparse(t *testing.T) {
	dir := diskDir(t)
	rng := rand.New(rand.NewSource(3))
	cases := []struct {
		size  int64
		datas [][2]int64 // offset, length
	}{
		{0, nil},
		{100, [][2]int64{{0, 100}}},
		{8 << 20, nil},
		{8<<20 + 123, [][2]int64{{5, 10}, {1 << 20, 3 << 20}, {8 << 20, 123}}},
		{16 << 20, [][2]int64{{3<<20 + 4096, 8192}, {12 << 20, 1}}},
	}
	for i, c := range cases {
		src := filepath.Join(dir, "src"+strconv.Itoa(i))
		want := make([]byte, c.size)
		f, err := os.Create(src)
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(c.size)
		for _, d := range c.datas {
			rng.Read(want[d[0] : d[0]+d[1]])
			f.WriteAt(want[d[0]:d[0]+d[1]], d[0])
		}
		f.Close()
		dst := filepath.Join(dir, "dst"+strconv.Itoa(i))
		if err := CopySparse(src, dst, 0o644); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		got, err := os.ReadFile(dst)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d: the copy differs (%d bytes, want %d)", i, len(got), len(want))
		}
		var ss, ds unix.Stat_t
		unix.Stat(src, &ss)
		unix.Stat(dst, &ds)
		if ds.Blocks > ss.Blocks+8 {
			t.Fatalf("case %d: the copy uses %d blocks, the source %d: holes filled", i, ds.Blocks, ss.Blocks)
		}
		if ds.Mode&0o777 != 0o644 {
			t.Fatalf("case %d: mode %o", i, ds.Mode&0o777)
		}
	}
	if err := CopySparse(filepath.Join(dir, "src1"), filepath.Join(dir, "dst1"), 0o644); !os.IsExist(err) {
		t.Fatalf("copy onto an existing file: %v, want an exists error", err)
	}
}

// TestWriteAtMixed writes aligned and unaligned pieces in any order,
// some over blocks written the other way: the file holds the last write
// of every byte.
func TestWriteAtMixed(t *testing.T) {
	name := filepath.Join(t.TempDir(), "f")
	f, err := Create(name, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 64<<10)
	write := func(off int64, n int, aligned bool, v byte) {
		var b []byte
		if aligned {
			b = Buffer(n)
		} else {
			b = make([]byte, n+1)[1:]
		}
		for i := range b {
			b[i] = v + byte(i)
		}
		if w, err := f.WriteAt(b, off); err != nil || w != n {
			t.Fatalf("write %d at %d: %d, %v", n, off, w, err)
		}
		copy(want[off:], b)
	}
	write(8192, 16384, true, 1)  // direct
	write(0, 100, false, 2)      // a header through the page cache
	write(10000, 50, false, 3)   // inside a block written directly
	write(8192, 8192, true, 4)   // direct over a block just cached
	write(4096, 4096+7, true, 5) // whole block direct, 7 bytes cached
	write(61440, 4096, false, 6) // unaligned buffer, aligned offset
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the file is not what was written last at every byte")
	}
}

// TestWriter streams uneven pieces into a file through Writer: the file
// holds the stream, whole chunks went around the page cache.
func TestWriter(t *testing.T) {
	dir := diskDir(t)
	rng := rand.New(rand.NewSource(4))
	for _, size := range []int{0, 1, Block, 1<<20 - 1, 1 << 20, 3<<20 + 5} {
		name := filepath.Join(dir, "w"+strconv.Itoa(size))
		if err := os.WriteFile(name, []byte("old content, longer than some streams"), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := OpenTrunc(name)
		if err != nil {
			t.Fatal(err)
		}
		w := NewWriter(f)
		want := make([]byte, size)
		rng.Read(want)
		for rest := want; len(rest) > 0; {
			n := min(len(rest), 1+rng.Intn(300000))
			if _, err := w.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if size >= 1<<20 && f.Direct() { // before reading it back
			if n, of := resident(t, name); n > of-(1<<20)/os.Getpagesize() {
				t.Fatalf("size %d: %d of %d pages in the page cache", size, n, of)
			}
		}
		got, _ := os.ReadFile(name)
		if !bytes.Equal(got, want) {
			t.Fatalf("size %d: the file holds %d bytes, not the stream", size, len(got))
		}
	}
}

// TestReader reads files of sizes around the block and buffer sizes: the
// same bytes, io.EOF only with the last (short) fill, and a file written
// around the page cache is read around it too (nothing of it resident
// afterwards but the partial last block the write left). On tmpfs, which
// may refuse O_DIRECT, the same reads go through the page cache.
func TestReader(t *testing.T) {
	dirs := []string{diskDir(t)}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		shm, err := os.MkdirTemp("/dev/shm", "dib-directio-test-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(shm) })
		dirs = append(dirs, shm)
	}
	rng := rand.New(rand.NewSource(3))
	for _, dir := range dirs {
		for _, size := range []int{0, 1, Block - 1, Block, Block + 1, 1 << 20, 3<<20 + 7} {
			data := make([]byte, size)
			rng.Read(data)
			name := filepath.Join(dir, "r"+strconv.Itoa(size))
			f, err := Create(name, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			b := Buffer(size)
			copy(b, data)
			if _, err := f.WriteAt(b, 0); err != nil {
				t.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			direct := f.Direct()
			f.Close()
			in, err := os.Open(name)
			if err != nil {
				t.Fatal(err)
			}
			r := NewReader(in)
			var got []byte
			buf := Buffer(1 << 20)
			for {
				n, err := r.Fill(buf)
				got = append(got, buf[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if n != len(buf) {
					t.Fatalf("%s: a short fill (%d) without io.EOF", name, n)
				}
			}
			r.Close()
			in.Close()
			if !bytes.Equal(got, data) {
				t.Fatalf("%s: read %d bytes, not the file's %d", name, len(got), size)
			}
			if direct && size > 0 && dir == dirs[0] { // tmpfs pages are all resident
				if n, of := resident(t, name); n > 1 {
					t.Fatalf("%s: %d of %d pages in the page cache after reading; want at most the last one", name, n, of)
				}
			}
		}
	}
}
