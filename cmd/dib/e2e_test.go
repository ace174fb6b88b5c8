package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/runtime/ns/nstest"
)

// TestMain runs the package's tests in a private mount namespace when they
// run as root, so the end-to-end build cannot leave a mount behind.
func TestMain(m *testing.M) { nstest.Main(m) }

// requireE2E skips the long end-to-end tests unless asked for: as root with
// DIB_REQUIRE_INTEGRATION=1 (CI) or DIB_E2E=1.
func requireE2E(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end build skipped with -short")
	}
	if os.Getenv("DIB_REQUIRE_INTEGRATION") != "1" && os.Getenv("DIB_E2E") != "1" {
		t.Skip("end-to-end build: set DIB_E2E=1 (CI sets DIB_REQUIRE_INTEGRATION=1)")
	}
	nstest.RequireRoot(t)
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestDebianVMEndToEnd builds the Debian VM example as the README says,
// checks the disk against the plan and boots it with SeaBIOS and OVMF to a
// login prompt, logging in as the devuser.
func TestDebianVMEndToEnd(t *testing.T) {
	requireE2E(t)
	t.Setenv("DEV_PASSWORD", "e2e-pass")
	ex := "../../examples/debian-vm.yaml"
	out := t.TempDir()

	code, stdout, stderr := runDib(t, "plan", "--json", ex)
	if code != 0 {
		t.Fatalf("plan: %d %s", code, stderr)
	}
	p, err := plan.Read(strings.NewReader(stdout))
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runDib(t, "apply", "--install-host-tools", "--no-color", "-O", out, ex)
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, stderr)
	}
	raw := filepath.Join(out, "debian-vm.raw")
	qcow := filepath.Join(out, "debian-vm.qcow2")
	for _, f := range []string{raw, qcow, raw + ".sha256", qcow + ".sha256", filepath.Join(out, "debian-vm.d", "dpkg_packages")} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("output missing: %v", err)
		}
	}
	// Nothing left mounted or attached.
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), "dib_") {
		t.Errorf("a build mount is left:\n%s", mi)
	}
	if l := sh(t, "losetup", "-a"); strings.Contains(l, "debian-vm") || strings.Contains(l, "dib_") {
		t.Errorf("a loop device is left: %s", l)
	}
	sh(t, "qemu-img", "check", qcow)
	sh(t, "sh", "-c", "cd "+out+" && sha256sum -c debian-vm.raw.sha256 debian-vm.qcow2.sha256")

	// The partition table is the plan's, byte for byte.
	var layoutTable struct {
		PartitionTable struct {
			Label      string `json:"label"`
			Partitions []struct {
				Start int64  `json:"start"`
				Size  int64  `json:"size"`
				Type  string `json:"type"`
				Name  string `json:"name"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal([]byte(sh(t, "sfdisk", "--json", raw)), &layoutTable); err != nil {
		t.Fatal(err)
	}
	var want []string
	var rootOff, rootSize, espOff, espSize int64
	for _, s := range p.Steps {
		if s.Partition == nil {
			continue
		}
		for _, pt := range s.Partition.Layout.PartitionTables[0].Partitions {
			want = append(want, strings.Join([]string{itoa(pt.Start), itoa(pt.Size), strings.ToUpper(pt.GPTType), pt.GPTName}, " "))
			switch pt.GPTName {
			case "root":
				rootOff, rootSize = pt.StartBytes, pt.SizeBytes
			case "ESP":
				espOff, espSize = pt.StartBytes, pt.SizeBytes
			}
		}
	}
	var got []string
	for _, pt := range layoutTable.PartitionTable.Partitions {
		got = append(got, strings.Join([]string{itoa(pt.Start), itoa(pt.Size), strings.ToUpper(pt.Type), pt.Name}, " "))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("sfdisk sees:\n%s\nthe plan says:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	sh(t, "sgdisk", "-v", raw)

	// Filesystems are clean.
	for _, fsck := range []struct {
		off, size int64
		argv      []string
	}{{rootOff, rootSize, []string{"e2fsck", "-fn"}}, {espOff, espSize, []string{"fsck.vfat", "-n"}}} {
		dev := strings.TrimSpace(sh(t, "losetup", "-r", "-f", "--show", "-o", itoa(fsck.off), "--sizelimit", itoa(fsck.size), raw))
		out, err := exec.Command(fsck.argv[0], append(fsck.argv[1:], dev)...).CombinedOutput()
		if fsck.argv[0] == "e2fsck" {
			// The image's fstab is the plan's (DIB's writefstab).
			fstab, ferr := exec.Command("debugfs", "-R", "cat /etc/fstab", dev).Output()
			var lines []string
			for _, s := range p.Steps {
				if s.Partition != nil {
					for _, f := range s.Partition.Layout.Fstab {
						lines = append(lines, f.Line)
					}
				}
			}
			if ferr != nil || !strings.Contains(string(fstab), strings.Join(lines, "\n")) {
				t.Errorf("/etc/fstab in the image (%v):\n%s\nwant the plan's lines:\n%s", ferr, fstab, strings.Join(lines, "\n"))
			}
		}
		sh(t, "losetup", "-d", dev)
		if err != nil {
			t.Errorf("%s: %v\n%s", strings.Join(fsck.argv, " "), err, out)
		}
	}

	// Boot both ways; TCG because nested KVM is not reliable on CI hosts.
	for _, boot := range [][]string{
		{"boot", "--no-kvm", "--timeout", "600s", "--login", "devuser:e2e-pass", "--command", "test -f /etc/debian_version", raw},
		{"boot", "--no-kvm", "--uefi", "--timeout", "600s", qcow},
	} {
		code, stdout, stderr := runDib(t, boot...)
		t.Logf("%s: %s%s", strings.Join(boot[:3], " "), stdout, stderr)
		if code != 0 {
			t.Errorf("%s failed: exit %d", strings.Join(boot, " "), code)
		}
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestDebianTarballEndToEnd builds the tarball example: the tar holds a
// working Debian (apt-get runs in it) with the devuser, and the docker
// archive is loadable (manifest with the target tag).
func TestDebianTarballEndToEnd(t *testing.T) {
	requireE2E(t)
	out := t.TempDir()
	code, _, stderr := runDib(t, "apply", "--install-host-tools", "--no-color", "-O", out, "../../examples/debian-tarball.yaml")
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, stderr)
	}
	tree := filepath.Join(out, "tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	sh(t, "tar", "-xf", filepath.Join(out, "debian-rootfs.tar"), "-C", tree)
	if v := sh(t, "chroot", tree, "apt-get", "--version"); !strings.HasPrefix(v, "apt ") {
		t.Errorf("apt-get --version in the tarball: %q", v)
	}
	if pw, _ := os.ReadFile(filepath.Join(tree, "etc/passwd")); !strings.Contains(string(pw), "\ndev:") {
		t.Error("the devuser is not in the tarball's /etc/passwd")
	}
	for _, p := range []string{"proc", "sys"} {
		if ents, _ := os.ReadDir(filepath.Join(tree, p)); len(ents) != 0 {
			t.Errorf("/%s is not empty in the tarball", p)
		}
	}
	manifest := sh(t, "tar", "-xOf", filepath.Join(out, "debian-rootfs.docker.tar"), "manifest.json")
	if !strings.Contains(manifest, `"dib/debian:bookworm"`) {
		t.Errorf("docker manifest: %s", manifest)
	}
}
