package output

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dibuild/dib/runtime/shell"
)

// tree makes a small root filesystem with the things outputs must get
// right: a symlink, an xattr, /proc and /sys contents to exclude.
func tree(t *testing.T) (root string, xattr bool) {
	t.Helper()
	root = t.TempDir()
	files := map[string]string{
		"etc/hostname":   "dib\n",
		"usr/bin/tool":   "#!/bin/sh\n",
		"proc/cpuinfo":   "not packed",
		"sys/kernel/x":   "not packed",
		"var/lib/empty/": "",
	}
	for p, c := range files {
		full := filepath.Join(root, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("./usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	xattr = syscall.Setxattr(filepath.Join(root, "usr/bin/tool"), "user.dib", []byte("kept"), 0) == nil
	return root, xattr
}

func requireGNUTar(t *testing.T) {
	t.Helper()
	out, err := exec.Command("tar", "--version").Output()
	if err == nil && bytes.Contains(out, []byte("GNU tar")) {
		return
	}
	if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
		t.Fatal("GNU tar is required")
	}
	t.Skip("GNU tar not available")
}

type entry struct {
	typ   byte
	data  string
	link  string
	xattr string
}

func readTar(t *testing.T, r io.Reader) map[string]entry {
	t.Helper()
	tr := tar.NewReader(r)
	m := map[string]entry{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return m
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		m[h.Name] = entry{typ: h.Typeflag, data: string(b), link: h.Linkname, xattr: h.PAXRecords["SCHILY.xattr.user.dib"]}
	}
}

func names(m map[string]entry) []string {
	var n []string
	for k := range m {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

func checkTree(t *testing.T, m map[string]entry, prefix string, xattr bool) {
	t.Helper()
	want := []string{"", "bin", "etc/", "etc/hostname", "proc/", "sys/", "usr/", "usr/bin/", "usr/bin/tool", "var/", "var/lib/", "var/lib/empty/"}
	var got []string
	for _, n := range names(m) {
		if n == "manifest" {
			continue
		}
		got = append(got, strings.TrimPrefix(n, prefix))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entries %q, want %q", got, want)
	}
	if e := m[prefix+"etc/hostname"]; e.data != "dib\n" {
		t.Errorf("hostname %q", e.data)
	}
	if e := m[prefix+"bin"]; e.typ != tar.TypeSymlink || e.link != "./usr/bin" {
		t.Errorf("bin %+v", e)
	}
	if xattr && m[prefix+"usr/bin/tool"].xattr != "kept" {
		t.Error("xattr lost")
	}
}

func TestTar(t *testing.T) {
	requireGNUTar(t)
	root, xattr := tree(t)
	out := t.TempDir()
	dest := filepath.Join(out, "image.tar")
	if err := Tar(context.Background(), &shell.Runner{}, root, dest, 0, nil); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(dest)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkTree(t, readTar(t, f), "./", xattr)
	onlyFiles(t, out, "image.tar")
}

func TestTarGz(t *testing.T) {
	requireGNUTar(t)
	root, xattr := tree(t)
	out := t.TempDir()
	dest := filepath.Join(out, "image.tgz")
	if err := TarGz(context.Background(), &shell.Runner{}, root, dest, 0); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(dest)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	checkTree(t, readTar(t, zr), "./", xattr)
	onlyFiles(t, out, "image.tgz")
}

func TestACI(t *testing.T) {
	requireGNUTar(t)
	root, xattr := tree(t)
	out := t.TempDir()
	dest := filepath.Join(out, "image.aci")
	manifest := ACIManifest("image", "amd64")
	if err := ACI(context.Background(), &shell.Runner{}, root, dest, manifest, 0); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(dest)
	defer f.Close()
	m := readTar(t, f)
	if m["manifest"].data != string(manifest) {
		t.Errorf("manifest %q", m["manifest"].data)
	}
	checkTree(t, m, "rootfs/", xattr)
	if !json.Valid(manifest) {
		t.Error("default manifest is not JSON")
	}
	onlyFiles(t, out, "image.aci")
}

func TestDocker(t *testing.T) {
	requireGNUTar(t)
	root, xattr := tree(t)
	out := t.TempDir()
	dest := filepath.Join(out, "image.docker.tar")
	o := DockerOptions{Target: "registry.example:5000/team/img:v1", Arch: "arm64"}
	if err := Docker(context.Background(), &shell.Runner{}, root, dest, o); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(dest)
	m := readTar(t, bytes.NewReader(first))

	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal([]byte(m["manifest.json"].data), &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("manifest.json %q: %v", m["manifest.json"].data, err)
	}
	mf := manifest[0]
	if !reflect.DeepEqual(mf.RepoTags, []string{"registry.example:5000/team/img:v1"}) || len(mf.Layers) != 1 {
		t.Errorf("manifest %+v", mf)
	}
	cfg := m[mf.Config].data
	sum := sha256.Sum256([]byte(cfg))
	if mf.Config != hex.EncodeToString(sum[:])+".json" {
		t.Errorf("config name %s is not its digest", mf.Config)
	}
	var c struct {
		Architecture, OS string
		RootFS           struct {
			Type    string
			DiffIDs []string `json:"diff_ids"`
		}
	}
	if err := json.Unmarshal([]byte(cfg), &c); err != nil {
		t.Fatal(err)
	}
	layer := m[mf.Layers[0]].data
	lsum := sha256.Sum256([]byte(layer))
	if c.Architecture != "arm64" || c.OS != "linux" || c.RootFS.Type != "layers" ||
		!reflect.DeepEqual(c.RootFS.DiffIDs, []string{"sha256:" + hex.EncodeToString(lsum[:])}) {
		t.Errorf("config %+v", c)
	}
	var repos map[string]map[string]string
	if err := json.Unmarshal([]byte(m["repositories"].data), &repos); err != nil || repos["registry.example:5000/team/img"]["v1"] == "" {
		t.Errorf("repositories %q %v", m["repositories"].data, err)
	}
	lm := readTar(t, strings.NewReader(layer))
	lm[""] = entry{} // the layer has no root entry; checkTree expects one
	checkTree(t, lm, "", xattr)

	// Reproducible: the same tree gives the same bytes.
	if err := Docker(context.Background(), &shell.Runner{}, root, dest, o); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(dest)
	if !bytes.Equal(first, second) {
		t.Error("docker archive is not reproducible")
	}
	onlyFiles(t, out, "image.docker.tar")
}

func TestSplitTarget(t *testing.T) {
	tests := []struct{ in, repo, tag string }{
		{"img", "img", "latest"},
		{"img:1", "img", "1"},
		{"host:5000/img", "host:5000/img", "latest"},
		{"host:5000/a/img:t", "host:5000/a/img", "t"},
	}
	for _, tt := range tests {
		r, g, err := splitTarget(tt.in)
		if err != nil || r != tt.repo || g != tt.tag {
			t.Errorf("splitTarget(%q) = %q %q %v", tt.in, r, g, err)
		}
	}
	for _, bad := range []string{"", "img:", ":t", "a b:c"} {
		if _, _, err := splitTarget(bad); err == nil {
			t.Errorf("splitTarget(%q) accepted", bad)
		}
	}
}

func TestFailureLeavesNothing(t *testing.T) {
	requireGNUTar(t)
	out := t.TempDir()
	missing := filepath.Join(t.TempDir(), "nope")
	r := &shell.Runner{}
	ctx := context.Background()
	writers := map[string]func(string) error{
		"image.tar":        func(d string) error { return Tar(ctx, r, missing, d, 0, nil) },
		"image.tgz":        func(d string) error { return TarGz(ctx, r, missing, d, 0) },
		"image.aci":        func(d string) error { return ACI(ctx, r, missing, d, nil, 0) },
		"image.docker.tar": func(d string) error { return Docker(ctx, r, missing, d, DockerOptions{Target: "a:b"}) },
	}
	for name, w := range writers {
		t.Run(name, func(t *testing.T) {
			if err := w(filepath.Join(out, name)); err == nil {
				t.Fatal("no error")
			}
			onlyFiles(t, out)
		})
	}
}

func TestChecksums(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "image.tar")
	if err := os.WriteFile(p, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	files, _, err := Checksums(p, []string{"md5", "sha256"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		p + ".md5":    "b1946ac92492d2347c6235b4d2611184  image.tar\n",
		p + ".sha256": "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03  image.tar\n",
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if string(b) != want[f] {
			t.Errorf("%s = %q, want %q", f, b, want[f])
		}
	}
	if len(files) != 2 {
		t.Errorf("files %v", files)
	}
	if _, err := exec.LookPath("sha256sum"); err == nil {
		cmd := exec.Command("sha256sum", "-c", "image.tar.sha256")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sha256sum -c: %v %s", err, out)
		}
	}
	if _, _, err := Checksums(p, []string{"crc"}, nil); err == nil {
		t.Error("unknown algorithm accepted")
	}
}

// onlyFiles fails unless dir holds exactly the named files (no temp files).
func onlyFiles(t *testing.T, dir string, want ...string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	sort.Strings(want)
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s holds %q, want %q", dir, got, want)
	}
}

func TestSquashfs(t *testing.T) {
	for _, tool := range []string{"mksquashfs", "unsquashfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
				t.Fatalf("%s not installed (Debian: squashfs-tools)", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
	root, _ := tree(t)
	out := t.TempDir()
	dest := filepath.Join(out, "image.squash")
	if err := Squashfs(context.Background(), &shell.Runner{}, root, dest); err != nil {
		t.Fatal(err)
	}
	onlyFiles(t, out, "image.squash")
	x := filepath.Join(t.TempDir(), "x")
	if b, err := exec.Command("unsquashfs", "-d", x, dest).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if b, err := exec.Command("diff", "-r", "--no-dereference", root, x).CombinedOutput(); err != nil {
		t.Fatalf("squashfs content differs: %v\n%s", err, b)
	}
}

// TestTarClampsModTimes: with SOURCE_DATE_EPOCH, a file older than it (a
// package's) keeps its modification time and a newer one (the build's)
// gets the epoch (tgz, aci and the docker layer run the same tar).
func TestTarClampsModTimes(t *testing.T) {
	requireGNUTar(t)
	root, _ := tree(t)
	const epoch = 1700000000
	old := time.Unix(epoch-86400*365, 0)
	if err := os.Chtimes(filepath.Join(root, "usr/bin/tool"), old, old); err != nil {
		t.Fatal(err)
	}
	newer := time.Unix(epoch+3600, 500)
	if err := os.Chtimes(filepath.Join(root, "etc/hostname"), newer, newer); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "image.tar")
	if err := Tar(context.Background(), &shell.Runner{}, root, dest, epoch, nil); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(dest)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	times := map[string]time.Time{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		times[h.Name] = h.ModTime
	}
	if got := times["./usr/bin/tool"]; !got.Equal(old) {
		t.Errorf("usr/bin/tool (older than the epoch): mtime %v, want its own %v", got.Unix(), old.Unix())
	}
	if got := times["./etc/hostname"]; !got.Equal(time.Unix(epoch, 0)) {
		t.Errorf("etc/hostname (newer than the epoch): mtime %v, want the epoch %d", got, epoch)
	}
}

// TestChecksumsSparse: a file with holes at its start, middle and end and
// data across chunk edges sums as its bytes do (holes read as zeros).
func TestChecksumsSparse(t *testing.T) {
	p := filepath.Join(t.TempDir(), "disk.raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	const size = 7<<20 + 333
	want := make([]byte, size)
	for _, d := range [][2]int{{3<<20 - 10, 20}, {4 << 20, 1<<20 + 5}, {6<<20 + 4096, 100}} {
		for i := d[0]; i < d[0]+d[1]; i++ {
			want[i] = byte(i*7 + 1)
		}
		if _, err := f.WriteAt(want[d[0]:d[0]+d[1]], int64(d[0])); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	files, _, err := Checksums(p, []string{"sha256", "md5"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, m := sha256.Sum256(want), md5.Sum(want)
	for i, sum := range []string{hex.EncodeToString(s[:]), hex.EncodeToString(m[:])} {
		got, _ := os.ReadFile(files[i])
		if string(got) != sum+"  disk.raw\n" {
			t.Errorf("%s: %q, want %s", files[i], got, sum)
		}
	}
}

// TestTarNoSpace: when the output's filesystem fills up, the error says
// so (not only that tar's pipe closed) and no output is left.
func TestTarNoSpace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("no tar")
	}
	root := t.TempDir()
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 31)
	}
	if err := os.WriteFile(filepath.Join(root, "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := syscall.Mount("tmpfs", out, "tmpfs", 0, "size=256k"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	defer syscall.Unmount(out, syscall.MNT_DETACH)
	dest := filepath.Join(out, "image.tar")
	err := Tar(context.Background(), &shell.Runner{}, root, dest, 0, nil)
	if err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("tar onto a full filesystem: %v; want an error naming ENOSPC", err)
	}
	ents, _ := os.ReadDir(out)
	if len(ents) != 0 {
		t.Fatalf("left in the output directory: %v", ents)
	}
}

// TestPrecomputedChecksums: checksums computed ahead serve the checksum
// step of the same file renamed (a sparse image: holes hashed as zeros),
// and not a file written since, a copy, or other algorithms: those are
// read again, and the sums are always those of the file as it is.
func TestPrecomputedChecksums(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "image.raw")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(bytes.Repeat([]byte("data "), 300000), 5<<20)
	f.Truncate(64 << 20)
	f.Close()
	want := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(b)
		return hex.EncodeToString(s[:]) + "  " + filepath.Base(path) + "\n"
	}
	check := func(path string, pre *Precomputed, algs []string, wantReused bool) {
		t.Helper()
		files, reused, err := Checksums(path, algs, pre)
		if err != nil {
			t.Fatal(err)
		}
		if reused != wantReused {
			t.Errorf("%s: reused %v, want %v", path, reused, wantReused)
		}
		if got, _ := os.ReadFile(files[0]); string(got) != want(path) {
			t.Errorf("%s: %q, want %q", files[0], got, want(path))
		}
	}
	sha := []string{"sha256"}
	pre, err := Precompute(context.Background(), img, sha)
	if err != nil {
		t.Fatal(err)
	}
	defer pre.Stop()
	out := filepath.Join(dir, "out.raw")
	if err := os.Rename(img, out); err != nil {
		t.Fatal(err)
	}
	check(out, pre, []string{"sha256", "md5"}, false)
	check(out, pre, sha, true)

	// A copy is another file.
	b, _ := os.ReadFile(out)
	cp := filepath.Join(dir, "copy.raw")
	os.WriteFile(cp, b, 0o644)
	check(cp, pre, sha, false)

	// Written after the computation: read again.
	f, err = os.OpenFile(out, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("changed"), 5<<20)
	f.Close()
	check(out, pre, sha, false)

	// Stopped before the end: nothing is reused.
	pre2, err := Precompute(context.Background(), cp, sha)
	if err != nil {
		t.Fatal(err)
	}
	pre2.Stop()
	if pre2.sums != nil {
		// It may have finished before Stop: then its sums are right.
		check(cp, pre2, sha, true)
	} else {
		check(cp, pre2, sha, false)
	}
}
