package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDiskImageCreateEndToEnd builds a seed's kind of command line through
// the drop-in disk-image-create, as root, the way a DIB user runs it: the
// output names, the checksum files and the devuser from DIB_* variables.
func TestDiskImageCreateEndToEnd(t *testing.T) {
	requireE2E(t)
	out := t.TempDir()
	environ := append(os.Environ(), "DIB_RELEASE=bookworm", "DIB_DEV_USER_USERNAME=seeduser", "DIB_DEV_USER_PASSWORD=seed-pass")
	code, stdout, stderr := runEnv(t, environ, "disk-image-create", "-x", "-t", "tar", "--checksum", "--no-tmpfs",
		"-o", filepath.Join(out, "debian-seed"), "debian-minimal", "devuser")
	if code != 0 {
		t.Fatalf("disk-image-create: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "Plan for image debian-seed") {
		t.Errorf("no plan shown:\n%s", stdout)
	}
	tarball := filepath.Join(out, "debian-seed.tar")
	for _, f := range []string{tarball, tarball + ".md5", tarball + ".sha256"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("output missing: %v", err)
		}
	}
	passwd := sh(t, "tar", "-xOf", tarball, "./etc/passwd")
	if !strings.Contains(passwd, "seeduser:") {
		t.Errorf("DIB_DEV_USER_USERNAME not obeyed:\n%s", passwd)
	}
	if strings.Contains(stdout+stderr, "seed-pass") {
		t.Error("the password was printed")
	}
}
