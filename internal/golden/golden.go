// Package golden compares test output with golden files, byte for byte;
// `go test -update` rewrites them. Every package with golden files uses
// it, so they all behave alike and share the one -update flag.
package golden

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// update is the -update flag of the test binary that imports this package
// (a test binary is one package, so one flag).
var update = flag.Bool("update", false, "rewrite the golden files")

// Update reports whether -update was given.
func Update() bool { return *update }

// Compare checks got against the golden file at path, or writes it there
// with -update. A difference is reported with its first differing line.
func Compare(tb testing.TB, path string, got []byte) {
	tb.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (go test -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		tb.Errorf("%s differs from the golden file (go test -update rewrites it; review the diff):\n%s", path, firstDiff(string(want), string(got)))
	}
}

// firstDiff shows the first line where want and got differ.
func firstDiff(want, got string) string {
	lw, lg := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(lw) && i < len(lg); i++ {
		if lw[i] != lg[i] {
			return "line " + strconv.Itoa(i+1) + ":\n- " + lw[i] + "\n+ " + lg[i]
		}
	}
	return "got " + strconv.Itoa(len(lg)) + " lines, the golden file " + strconv.Itoa(len(lw))
}
