package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dibuild/dib/runtime/ledger"
)

// shellImages makes a tiny image (static busybox, /etc/marker) as a tree,
// a tar, a raw disk (GPT: a data partition, LABEL=data, on /data by the
// root's fstab; the root partition) and a qcow2 of the disk.
func shellImages(t *testing.T) map[string]string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("no busybox (busybox-static)")
	}
	dir := t.TempDir()
	tree, data := filepath.Join(dir, "tree"), filepath.Join(dir, "data")
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp", "data"} {
		os.MkdirAll(filepath.Join(tree, d), 0o755)
	}
	os.MkdirAll(data, 0o755)
	b, _ := os.ReadFile(bb)
	os.WriteFile(filepath.Join(tree, "bin/busybox"), b, 0o755)
	for _, c := range []string{"sh", "cat", "ls", "touch", "sleep", "kill", "grep"} {
		os.Symlink("busybox", filepath.Join(tree, "bin", c))
	}
	os.WriteFile(filepath.Join(tree, "etc/os-release"), []byte("ID=dibtest\n"), 0o644)
	os.WriteFile(filepath.Join(tree, "etc/marker"), []byte("inside the image\n"), 0o644)
	os.WriteFile(filepath.Join(tree, "etc/fstab"), []byte("LABEL=root / ext4 defaults 0 1\nLABEL=data /data ext4 defaults 0 2\n"), 0o644)
	os.WriteFile(filepath.Join(data, "hello"), []byte("from the data partition\n"), 0o644)
	raw := filepath.Join(dir, "disk.raw")
	steps := [][]string{
		{"tar", "-C", tree, "-cf", filepath.Join(dir, "tree.tar"), "."},
		{"truncate", "-s", "64M", raw},
		{"mkfs.ext4", "-q", "-F", "-L", "data", "-d", data, "-E", "offset=" + fmt.Sprint(2048*512), raw, "16M"},
		{"mkfs.ext4", "-q", "-F", "-L", "root", "-d", tree, "-E", "offset=" + fmt.Sprint(34816*512), raw, "46M"},
		{"qemu-img", "convert", "-O", "qcow2", raw, filepath.Join(dir, "disk.qcow2")},
	}
	for i, argv := range steps {
		if i == 2 { // the partition table first
			cmd := exec.Command("sfdisk", "-q", raw)
			cmd.Stdin = strings.NewReader("label: gpt\nstart=2048, size=32768, name=data\nstart=34816, size=94208, name=root\n")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("sfdisk: %v\n%s", err, out)
			}
		}
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
	}
	return map[string]string{"tree": tree, "tar": filepath.Join(dir, "tree.tar"), "raw": raw, "qcow2": filepath.Join(dir, "disk.qcow2")}
}

// leftovers says what a dib shell left: mounts, loop devices over the
// image, sessions in the work directory.
func leftovers(work, image string) string {
	var left []string
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if n := bytes.Count(mounts, []byte(work)); n > 0 {
		left = append(left, fmt.Sprintf("%d mounts under %s", n, work))
	}
	if l := ledger.LoopsUnder(image); len(l) > 0 {
		left = append(left, fmt.Sprintf("loop devices %v", l))
	}
	if s, _ := filepath.Glob(filepath.Join(work, "dib-shell", "*")); len(s) > 0 {
		left = append(left, fmt.Sprintf("sessions %v", s))
	}
	return strings.Join(left, "; ")
}

func fileDigest(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

// TestShell runs commands with dib shell -c in a tree, a tar, a raw and a
// qcow2 disk image: the image's files are there (the data partition at its
// fstab place), the command's exit status is dib's, nothing the command
// changes reaches the image, and nothing is left mounted or attached —
// also when the shell is killed with SIGINT or SIGKILL, and, when dib
// itself is killed with SIGKILL, after the next dib shell.
func TestShell(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("dib shell needs root")
	}
	if testing.Short() {
		t.Skip("builds dib and images")
	}
	dib := buildDib(t)
	images := shellImages(t)
	work := t.TempDir()
	shell := func(target, command string) (int, string) {
		cmd := exec.Command(dib, "shell", "--work-dir", work, "-c", command, target)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, string(out)
	}
	rawSum := fileDigest(t, images["raw"])
	for _, kind := range []string{"tree", "tar", "raw", "qcow2"} {
		t.Run(kind, func(t *testing.T) {
			target := images[kind]
			want := "inside the image"
			cmdline := "cat /etc/marker; touch /etc/changed; ls /proc/self >/dev/null && exit 7"
			if kind == "raw" || kind == "qcow2" {
				cmdline = "cat /etc/marker /data/hello; touch /etc/changed; ls /proc/self >/dev/null && exit 7"
				want += "\nfrom the data partition"
			}
			code, out := shell(target, cmdline)
			if code != 7 || !strings.Contains(out, want) {
				t.Errorf("exit %d, want 7, output:\n%s", code, out)
			}
			if _, err := os.Stat(filepath.Join(images["tree"], "etc/changed")); err == nil {
				t.Error("the change reached the tree")
			}
			if l := leftovers(work, target); l != "" {
				t.Errorf("left: %s", l)
			}
		})
	}
	if fileDigest(t, images["raw"]) != rawSum {
		t.Error("the raw image changed")
	}
	t.Run("shell killed", func(t *testing.T) {
		for sig, want := range map[string]int{"INT": 130, "KILL": 137} {
			code, out := shell(images["raw"], "kill -"+sig+" $$; sleep 5")
			if code != want {
				t.Errorf("SIGINT: exit %d, want %d\n%s", code, want, out)
			}
			if l := leftovers(work, images["raw"]); l != "" {
				t.Errorf("after SIG%s of the shell, left: %s", sig, l)
			}
		}
	})
	t.Run("dib killed", func(t *testing.T) {
		cmd := exec.Command(dib, "shell", "--work-dir", work, "-c", "sleep 60", images["raw"])
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for len(ledger.LoopsUnder(images["raw"])) == 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		// dib and its namespaced re-execution die; the shell lives on.
		children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
		for _, c := range strings.Fields(string(children)) {
			if pid, err := strconv.Atoi(c); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		cmd.Process.Kill()
		cmd.Wait()
		if l := leftovers(work, images["raw"]); !strings.Contains(l, "sessions") {
			t.Fatalf("a killed dib left no session to reclaim (%q): the test proves nothing", l)
		}
		code, out := shell(images["tar"], "true")
		if code != 0 || !strings.Contains(out, "a killed session") {
			t.Errorf("the next dib shell: exit %d\n%s", code, out)
		}
		deadline = time.Now().Add(10 * time.Second)
		for leftovers(work, images["raw"]) != "" && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if l := leftovers(work, images["raw"]); l != "" {
			t.Errorf("after the next dib shell, left: %s", l)
		}
	})
}
