package limits

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func repeat(s string, n int) string { return strings.Repeat(s, n) }

func keys(n int, indent string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%sK%d: v\n", indent, i)
	}
	return b.String()
}

// TestCheck: each limit is reported once, at the first place the file
// passes it, with the message naming the limit.
func TestCheck(t *testing.T) {
	l := Default()
	deepMap := ""
	for i := range 70 {
		deepMap += repeat(" ", i) + "a:\n"
	}
	cases := []struct {
		name, src, want string
	}{
		{"flow depth", "packages: " + repeat("[", 200000), "f:1:74: error: the values are nested more than 64 levels deep"},
		{"flow map depth", "a: " + repeat("{a: ", 100), "f:1:256: error: the values are nested more than 64 levels deep"},
		{"block depth", deepMap, "f:65:65: error: the values are nested more than 64 levels deep"},
		{"sequence depth", repeat("- ", 100) + "x\n", "f:1:129: error: the values are nested more than 64 levels deep"},
		{"keys", "env:\n" + keys(6000, "  "), "f:1002:3: error: a mapping with more than 1000 keys"},
		{"flow keys", "env: {" + repeat("a: b, ", 6000) + "}", "f:1:6008: error: a mapping with more than 1000 keys"},
		{"json keys", "{" + repeat(`"a":1,`, 6000) + "}", "f:1:6005: error: a mapping with more than 1000 keys"},
		{"values", "packages:\n" + repeat("- a\n", 30000), "f:10001:1: error: the file has more than 10000 values"},
		{"flow values", "[" + repeat("a,", 30000) + "]", "f:1:20001: error: the file has more than 10000 values"},
		{"plain string", "name: " + repeat("a", 300000), "f:1:7: error: a value longer than 256 KiB"},
		{"quoted string", "name: \"" + repeat("a", 300000) + "\"", "f:1:7: error: a value longer than 256 KiB"},
		{"multi-line quoted string", "name: '" + repeat("a\n", 150000) + "'", "f:1:7: error: a value longer than 256 KiB"},
		{"block string", "a: 1\nname: |\n" + repeat("  aaaaaaa\n", 30000) + "b: 2\n", "f:2:7: error: a value longer than 256 KiB"},
		{"tokens", "a: 1\n" + repeat("#\n", 100000), "f:49999:1: error: the file has more than 50000 YAML tokens (values, keys, punctuation and comments)"},
		{"words", "a: " + repeat("b ", 100001), "f:1:100001: error: the file has more than 50000 YAML tokens (values, keys, punctuation and comments)"},
		{"bytes", repeat("\n", 1<<20) + "x", "f:1048577:1: error: the file is larger than 1 MiB"},
		{"zeros", repeat("\x00", 2<<20), "f:1:1048577: error: the file is larger than 1 MiB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ds := l.Check("f", []byte(c.src))
			if len(ds) != 1 {
				t.Fatalf("got %d diagnostics: %v", len(ds), ds)
			}
			if got := ds[0].Error(); got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
			if ds[0].Hint == "" {
				t.Error("no hint")
			}
		})
	}
}

// TestCheckAccepts: ordinary files, and files right at the limits, pass.
func TestCheckAccepts(t *testing.T) {
	l := Default()
	deep := ""
	for i := range 64 {
		deep += repeat(" ", i) + "a:\n"
	}
	ok := []string{
		"",
		"name: x\ndistro: debian-minimal\n",
		"a: [" + repeat("[", 62) + repeat("]", 62) + "]",
		deep,
		"env:\n" + keys(1000, "  "),
		"env:\n" + keys(1000, "  ") + "other:\n" + keys(1000, "  "),
		"packages:\n" + repeat("- a\n", 9999),
		"name: " + repeat("a", 256<<10),
		"name: |\n" + repeat("  "+repeat("a", 1021)+"\n", 255),
		"k: \"a # not a comment: [ { \\\" \"\nl: 'it''s'\n",
		"a: |\n  - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -\nb: 1\n",
		"%YAML 1.2\n---\na: 1\n...\n---\nb: 2\n",
		`{"a": {"b": [1, 2, {"c": "d"}]}}`,
	}
	for i, src := range ok {
		if ds := l.Check("f", []byte(src)); len(ds) != 0 {
			t.Errorf("case %d: %v", i, ds)
		}
	}
	// Every Dibfile and element YAML of the repository is well within.
	for _, pattern := range []string{"../../examples/*.yaml", "../../elements/*/*/*.yaml", "../../elements/*/*/pkg-map", "../testdata/valid/*.yaml"} {
		files, _ := filepath.Glob(pattern)
		for _, f := range files {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if ds := l.Check(f, src); len(ds) != 0 {
				t.Errorf("%v", ds)
			}
		}
	}
}

// TestRead: at most Bytes+1 bytes are read, whatever the source holds.
func TestRead(t *testing.T) {
	l := Limits{Bytes: 10}
	got, err := l.Read(bytes.NewReader(make([]byte, 1000)))
	if err != nil || len(got) != 11 {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	if f, err := os.Open("/dev/zero"); err == nil {
		defer f.Close()
		got, err := Default().Read(f)
		if err != nil || len(got) != 1<<20+1 {
			t.Fatalf("/dev/zero: read %d bytes, %v", len(got), err)
		}
	}
}

// TestReadFS: element files must be regular files; a device or fifo
// behind a symbolic link is refused before it is opened.
func TestReadFS(t *testing.T) {
	fsys := fstest.MapFS{
		"pkg-map": {Data: []byte("{}")},
		"dev":     {Mode: os.ModeDevice | os.ModeCharDevice},
		"fifo":    {Mode: os.ModeNamedPipe},
	}
	if b, err := Default().ReadFS(fsys, "pkg-map"); err != nil || string(b) != "{}" {
		t.Errorf("pkg-map: %q %v", b, err)
	}
	for _, name := range []string{"dev", "fifo"} {
		if _, err := Default().ReadFS(fsys, name); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("%s: %v", name, err)
		}
	}
	dir := t.TempDir()
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "package-installs.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := Default().ReadFS(os.DirFS(dir), "package-installs.yaml"); err == nil {
		t.Error("a link to /dev/zero was read")
	}
}
