package elements

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The base element's dib-run-parts (the one elements find on PATH inside
// the image) runs hooks in DIB's order, `LC_ALL=C sort -n`: 5-a before
// 10-b, whatever ls or a lexical sort says. Run through the element's own
// embedded copy.
func TestDibRunPartsNumericOrder(t *testing.T) {
	requireTool(t, "bash")
	script, err := fs.ReadFile(FS(), "base/bin/dib-run-parts")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "dib-run-parts")
	if err := os.WriteFile(bin, script, 0o755); err != nil {
		t.Fatal(err)
	}
	hooks := filepath.Join(dir, "install.d")
	if err := os.Mkdir(hooks, 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "ran")
	for _, name := range []string{"10-b", "5-a", "100-c", "050-d", "9-e", "skip.sh", "no-exec"} {
		mode := os.FileMode(0o755)
		if name == "no-exec" {
			mode = 0o644
		}
		body := "#!/bin/sh\necho " + name + " >> " + log + "\n"
		if err := os.WriteFile(filepath.Join(hooks, name), []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("bash", bin, hooks).CombinedOutput()
	if err != nil {
		t.Fatalf("dib-run-parts: %v\n%s", err, out)
	}
	ran, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(string(ran))
	want := []string{"5-a", "9-e", "10-b", "050-d", "100-c"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("dib-run-parts ran %q, want DIB's sort -n order %q", got, want)
	}
}

// One implementation: the element's dib-run-parts is the runtime's own
// (runtime/lib/files), byte for byte.
func TestDibRunPartsSameAsRuntime(t *testing.T) {
	elem, err := fs.ReadFile(FS(), "base/bin/dib-run-parts")
	if err != nil {
		t.Fatal(err)
	}
	rt, err := os.ReadFile(filepath.Join("..", "runtime", "lib", "files", "dib-run-parts"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(elem, rt) {
		t.Error("elements/base/bin/dib-run-parts differs from runtime/lib/files/dib-run-parts; copy one onto the other")
	}
}
