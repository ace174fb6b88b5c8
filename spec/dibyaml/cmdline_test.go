package dibyaml

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dibuild/dib/internal/golden"
	"github.com/dibuild/dib/spec"
)

// ReadCommandFile reads a testdata/cmdline/*.cmd file: comment lines, then
// NAME=VALUE lines (the environment), then one "$ PROGRAM ARGS…" line
// split as a POSIX shell splits words (quotes, backslashes).
func readCommandFile(t *testing.T, path string) (program string, args, environ []string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "$ "):
			words, err := splitWords(line[2:])
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			return words[0], words[1:], environ
		default:
			environ = append(environ, line)
		}
	}
	t.Fatalf("%s: no $ line", path)
	return
}

// splitWords splits a command line as sh does, without expansions.
func splitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated '")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated \"")
			}
			inWord = true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// TestCommandLine maps each command line of testdata/cmdline to its
// Dibfile; the golden .out file holds the Dibfile, then the diagnostics
// and how the build would run. Files named -invalid- must fail.
func TestCommandLine(t *testing.T) {
	files, err := filepath.Glob("testdata/cmdline/*.cmd")
	if err != nil || len(files) == 0 {
		t.Fatal("no testdata", err)
	}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".cmd")
		t.Run(name, func(t *testing.T) {
			program, args, environ := readCommandFile(t, path)
			var b bytes.Buffer
			cl, err := ParseCommandLine(program, args, environ)
			invalid := strings.Contains(name, "-invalid-")
			if err != nil {
				var ue *UsageError
				if !errors.As(err, &ue) {
					t.Fatalf("not a usage error: %v", err)
				}
				fmt.Fprintf(&b, "usage error: %v\n", err)
			} else {
				out, ds := cl.Dibfile(program)
				b.Write(out)
				b.WriteString("---\n")
				_ = ds.WriteText(&b)
				if !ds.HasErrors() {
					fmt.Fprintf(&b, "output dir %q, no tmpfs %v, min tmpfs %d, image cache %q, logfile %q, break %q\n",
						cl.OutputDir, cl.NoTmpfs, cl.MinTmpfs, cl.ImageCache, cl.Logfile, cl.Break)
					if _, lds := spec.Load("Dibfile", out, nil); lds.HasErrors() {
						t.Errorf("the Dibfile does not load: %v", lds)
					}
				}
				if invalid != ds.HasErrors() {
					t.Errorf("errors = %v, want %v: %v", ds.HasErrors(), invalid, ds)
				}
			}
			if invalid != (err != nil || bytes.Contains(b.Bytes(), []byte(": error: "))) {
				t.Errorf("invalid = %v, output:\n%s", invalid, b.String())
			}
			golden.Compare(t, strings.TrimSuffix(path, ".cmd")+".out", b.Bytes())
		})
	}
}

// TestCommandLineNeverWritesSecrets: a password given in the environment
// becomes a from-env reference.
func TestCommandLineNeverWritesSecrets(t *testing.T) {
	cl, err := ParseCommandLine(DiskImageCreate, []string{"debian-minimal", "devuser"},
		[]string{"DIB_DEV_USER_PASSWORD=hunter2", "DIB_API_TOKEN=tok", "DIB_DEV_USER_USERNAME=me"})
	if err != nil {
		t.Fatal(err)
	}
	out, ds := cl.Dibfile("disk-image-create")
	if ds.HasErrors() {
		t.Fatal(ds)
	}
	if bytes.Contains(out, []byte("hunter2")) || bytes.Contains(out, []byte("tok\n")) {
		t.Errorf("secret written:\n%s", out)
	}
	f, lds := spec.Load("Dibfile", out, func(n string) (string, bool) {
		if n == "DIB_DEV_USER_PASSWORD" {
			return "hunter2", true
		}
		return "", false
	})
	if lds.HasErrors() {
		t.Fatal(lds)
	}
	for _, e := range f.Images[0].Env {
		if e.Name == "DIB_DEV_USER_PASSWORD" && (e.Value != "hunter2" || !e.Secret) {
			t.Errorf("password not read from the environment: %+v", e)
		}
	}
}

func TestSplitWords(t *testing.T) {
	got, err := splitWords(`a 'b c' "d \"e\"" f\ g`)
	if err != nil || strings.Join(got, "|") != `a|b c|d "e"|f g` {
		t.Errorf("%q %v", got, err)
	}
}
