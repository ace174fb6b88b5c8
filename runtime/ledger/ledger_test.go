package ledger

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dibuild/dib/runtime/shell"
)

// TestReclaimKilledBuild: a ledger left open (its build was killed) is
// undone: the process killed, the directory (and a loop device over a
// file in it, as root) and the temporary outputs removed, the ledger and
// the state directory gone; a file that was not recorded stays.
func TestReclaimKilledBuild(t *testing.T) {
	base := t.TempDir()
	state := filepath.Join(base, "out", ".dib")
	out := filepath.Join(base, "out")
	work := filepath.Join(base, "work", "dib_build.x")
	l, err := Open(state, "b1")
	if err != nil {
		t.Fatal(err)
	}
	marker := "DIB_BUILD_ID=ledger-test-" + filepath.Base(base)
	for _, e := range []Entry{{Kind: Processes, Marker: marker}, {Kind: Glob, Path: out, Pattern: ".img.*dibtmp-*"}, {Kind: Dir, Path: work}, {Kind: File, Path: filepath.Join(out, "img.d")}} {
		if err := l.Record(e); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{filepath.Join(work, "built/etc"), filepath.Join(out, "img.d")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(out, ".img.tar.dibtmp-123"), filepath.Join(out, "img.log"), filepath.Join(out, "other.tar")} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("sleep", "300")
	cmd.Env = append(os.Environ(), marker)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	loop := ""
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("losetup"); err == nil {
			img := filepath.Join(work, "image.raw")
			if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
				t.Fatal(err)
			}
			b, err := exec.Command("losetup", "--find", "--show", img).Output()
			if err == nil {
				loop = strings.TrimSpace(string(b))
				defer exec.Command("losetup", "-d", loop).Run()
			}
		}
	}
	// The build is "killed": its ledger is never closed.
	lefts, err := Reclaim(state)
	if err != nil {
		t.Fatal(err)
	}
	if len(lefts) != 1 || lefts[0].Build != "b1" || len(lefts[0].Errors) > 0 {
		t.Fatalf("Reclaim: %+v", lefts)
	}
	got := strings.Join(lefts[0].Reclaimed, "\n")
	for _, want := range []string{"killed 1 processes", "removed " + work, "removed " + filepath.Join(out, ".img.tar.dibtmp-123"), "removed " + filepath.Join(out, "img.d")} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if loop != "" && !strings.Contains(got, "detached "+loop) {
		t.Errorf("loop device %s not detached:\n%s", loop, got)
	}
	time.Sleep(50 * time.Millisecond)
	if pids := shell.Marked(marker); len(pids) > 0 {
		t.Errorf("processes left: %v", pids)
	}
	ents, _ := os.ReadDir(out)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "img.log other.tar" {
		t.Errorf("output dir holds %v", names)
	}
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Errorf("work dir left: %v", err)
	}
	// Nothing more to do the second time.
	if lefts, err := Reclaim(state); err != nil || len(lefts) != 0 {
		t.Errorf("second Reclaim: %+v %v", lefts, err)
	}
}

// TestClosedLedgerLeavesNothing: a build that ended deletes its ledger.
func TestClosedLedgerLeavesNothing(t *testing.T) {
	state := filepath.Join(t.TempDir(), ".dib")
	l, err := Open(state, "b2")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Record(Entry{Kind: Dir, Path: "/nonexistent"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if lefts, err := Reclaim(state); err != nil || len(lefts) != 0 {
		t.Fatalf("Reclaim after Close: %+v %v", lefts, err)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("state dir left: %v", err)
	}
}
