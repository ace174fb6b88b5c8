package ns

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// requireRoot skips without root, except under DIB_REQUIRE_INTEGRATION=1.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
		t.Fatal("needs root (DIB_REQUIRE_INTEGRATION=1)")
	}
	t.Skip("needs root to create a mount namespace")
}

const childDirEnv = "DIB_NS_TEST_DIR"

// TestChildMount is the body run inside the private namespace by
// TestMountDoesNotLeak; on its own it does nothing.
func TestChildMount(t *testing.T) {
	dir := os.Getenv(childDirEnv)
	if dir == "" {
		t.Skip("helper for TestMountDoesNotLeak")
	}
	parent, _, err := Enter(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if parent {
		t.Fatal("child is not in a private mount namespace: Enter re-executed it again")
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "inside"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if !strings.Contains(string(mi), " "+dir+" ") {
		t.Fatal("mount not visible inside")
	}
	// Exit without unmounting, as a killed build would.
}

func TestMountDoesNotLeak(t *testing.T) {
	requireRoot(t)
	if InPrivateMountNamespace() {
		t.Skip("already inside")
	}
	dir := t.TempDir()
	var out bytes.Buffer
	parent, code, err := Enter(context.Background(), Options{
		Args:   []string{os.Args[0], "-test.run=^TestChildMount$", "-test.v"},
		Env:    []string{childDirEnv + "=" + dir},
		Stdout: &out, Stderr: &out,
	})
	if err != nil || code != 0 || !parent {
		t.Fatalf("child: parent %v code %d err %v\n%s", parent, code, err, out.String())
	}
	if !strings.Contains(out.String(), "--- PASS: TestChildMount") {
		t.Fatalf("child did not run the check:\n%s", out.String())
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mi), " "+dir+" ") {
		t.Errorf("child's mount of %s leaked into the parent", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "inside")); err == nil {
		t.Error("file written on the child's tmpfs is visible in the parent")
	}
}

func TestReexecExitCode(t *testing.T) {
	requireRoot(t)
	var out bytes.Buffer
	code, err := Reexec(context.Background(), Options{
		Args:   []string{os.Args[0], "-test.run=^TestChildFails$"},
		Env:    []string{"DIB_NS_TEST_FAIL=1"},
		Stdout: &out, Stderr: &out,
	})
	if err != nil || code != 1 {
		t.Fatalf("code %d err %v\n%s", code, err, out.String())
	}
}

func TestChildFails(t *testing.T) {
	if os.Getenv("DIB_NS_TEST_FAIL") == "" {
		t.Skip("helper for TestReexecExitCode")
	}
	t.Fatal("failing on purpose")
}

func TestNotPrivateWithoutMarker(t *testing.T) {
	t.Setenv(EnvMarker, "")
	if InPrivateMountNamespace() {
		t.Error("private without marker")
	}
	cur, err := current()
	if err != nil {
		t.Skip(err)
	}
	t.Setenv(EnvMarker, cur)
	if InPrivateMountNamespace() {
		t.Error("marker naming our own namespace must not count as private")
	}
}
