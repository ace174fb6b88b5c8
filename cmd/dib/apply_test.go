package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestApplyDryRun runs `dib apply -n` on the tarball example: no root is
// needed, every command is printed, nothing is built, and the JSON events
// cover every step.
func TestApplyDryRun(t *testing.T) {
	out := t.TempDir()
	code, stdout, stderr := runDib(t, "apply", "-n", "--json", "-O", out, "--work-dir", t.TempDir(), "../../examples/debian-tarball.yaml")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "bootstrap/mmdebstrap | + mmdebstrap --mode=root --format=directory --variant=minbase") {
		t.Errorf("dry run did not print the mmdebstrap command:\n%s", stderr)
	}
	started, finished := 0, 0
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var e struct {
			Type string `json:"type"`
			Step string `json:"step_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("not a JSON event: %q", sc.Text())
		}
		switch e.Type {
		case "step-started":
			started++
		case "step-finished":
			finished++
		}
	}
	if started == 0 || started != finished {
		t.Errorf("%d steps started, %d finished", started, finished)
	}
	ents, _ := os.ReadDir(out)
	if len(ents) != 1 || ents[0].Name() != "debian-rootfs.log" {
		t.Errorf("dry run wrote %v", ents)
	}
	if _, err := os.Stat(filepath.Join(out, "debian-rootfs.tar")); err == nil {
		t.Error("dry run built an output")
	}
}
