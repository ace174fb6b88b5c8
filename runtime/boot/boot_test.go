package boot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain makes the test binary a fake qemu-system-x86_64 when
// DIB_FAKE_QEMU is set: it serves the console socket like QEMU and plays a
// guest (DIB_FAKE_QEMU=login: a Debian login; =silent: prints boot noise
// and never a prompt).
func TestMain(m *testing.M) {
	if mode := os.Getenv("DIB_FAKE_QEMU"); mode != "" {
		fakeQEMU(mode)
		return
	}
	os.Exit(m.Run())
}

func fakeQEMU(mode string) {
	var sock string
	for _, a := range os.Args {
		for _, f := range strings.Split(a, ",") {
			if p, ok := strings.CutPrefix(f, "path="); ok {
				sock = p
			}
		}
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		os.Exit(3)
	}
	c, err := l.Accept()
	if err != nil {
		os.Exit(3)
	}
	r := bufio.NewReader(c)
	fmt.Fprint(c, "SeaBIOS\r\nBooting from Hard Disk...\r\n[    0.000000] Linux version 6.1.0\r\n")
	if mode == "kvm-hangs" && strings.Contains(strings.Join(os.Args, " "), "accel=kvm") {
		time.Sleep(time.Hour)
	}
	if mode == "silent" {
		time.Sleep(time.Hour)
	}
	fmt.Fprint(c, "\r\nDebian GNU/Linux 12 dib ttyS0\r\n\r\ndib login: ")
	user, _ := r.ReadString('\n')
	fmt.Fprint(c, strings.TrimSpace(user)+"\r\nPassword: ")
	pass, _ := r.ReadString('\n')
	if strings.TrimSpace(user) != "root" || strings.TrimSpace(pass) != "dib" {
		fmt.Fprint(c, "\r\nLogin incorrect\r\ndib login: ")
		time.Sleep(time.Hour)
	}
	if mode == "motd-after-echo" {
		// The console stops after the '#' of the kernel's line: that looks
		// like a prompt, so the command is typed ahead and echoed before
		// the motd and the real prompt.
		fmt.Fprint(c, "\r\nLinux dib 6.1.0 #")
	} else {
		fmt.Fprint(c, "\r\nLinux dib 6.1.0\r\nroot@dib:~# ")
	}
	cmd, _ := r.ReadString('\n')
	rc := "0"
	if strings.Contains(cmd, "false") {
		rc = "1"
	}
	fmt.Fprintf(c, "%s\r\n", strings.TrimSpace(cmd))
	if mode == "motd-after-echo" {
		fmt.Fprint(c, "1 SMP PREEMPT_DYNAMIC\r\n\r\nThe programs included with the Debian GNU/Linux system are free software.\r\nroot@dib:~# ")
	}
	// The shell runs the line: the marker's echo prints it whole.
	if strings.Contains(cmd, `echo DIB-""BEGIN;`) {
		fmt.Fprint(c, "DIB-BEGIN\r\n")
	}
	fmt.Fprintf(c, "hello from the guest\r\nDIB-RC=%s\r\nroot@dib:~# ", rc)
	time.Sleep(time.Hour)
}

func fakePath(t *testing.T, mode string) {
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, filepath.Join(dir, "qemu-system-x86_64")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("DIB_FAKE_QEMU", mode)
}

func TestBootConsoleProtocol(t *testing.T) {
	img := filepath.Join(t.TempDir(), "disk.raw")
	os.WriteFile(img, nil, 0o644)
	cases := []struct {
		name, mode, login, command string
		wantErr                    string
		wantOut                    string
	}{
		{"prompt", "login", "", "", "", ""},
		{"login-command", "login", "root:dib", "echo hello", "", "hello from the guest\n"},
		{"motd-after-echo", "motd-after-echo", "root:dib", "echo hello", "", "hello from the guest\n"},
		{"command-fails", "login", "root:dib", "false", "exited with status 1", ""},
		{"wrong-password", "login", "root:nope", "true", "no shell prompt", ""},
		{"timeout", "silent", "", "", "no login prompt", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fakePath(t, c.mode)
			start := time.Now()
			res, err := Boot(context.Background(), Options{Image: img, Timeout: 3 * time.Second, Login: c.login, Command: c.command, WorkDir: t.TempDir()})
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if res.LoginPrompt <= 0 || res.CommandOutput != c.wantOut {
					t.Errorf("result %+v", res)
				}
				return
			}
			var be *Error
			if !errors.As(err, &be) || !strings.Contains(be.Reason, c.wantErr) {
				t.Fatalf("error %v, want %q", err, c.wantErr)
			}
			if c.mode == "silent" && (len(be.Tail) == 0 || !strings.Contains(strings.Join(be.Tail, "\n"), "Linux version")) {
				t.Errorf("no console tail in %v", be)
			}
			if time.Since(start) > 20*time.Second {
				t.Errorf("QEMU was not stopped promptly")
			}
		})
	}
}

func TestGuessFormat(t *testing.T) {
	for in, want := range map[string]string{"a.qcow2": "qcow2", "a.raw": "raw", "a.vhd": "vpc", "A.VMDK": "vmdk", "img": "raw"} {
		if got := guessFormat(in); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}

// TestKVMFallback: a KVM that hangs the guest costs KVMTrial, then the
// boot succeeds with TCG and says so.
func TestKVMFallback(t *testing.T) {
	img := filepath.Join(t.TempDir(), "disk.raw")
	os.WriteFile(img, nil, 0o644)
	fakePath(t, "kvm-hangs")
	o := Options{Image: img, Timeout: 10 * time.Second, KVMTrial: time.Second, WorkDir: t.TempDir(), kvmUsable: func() bool { return true }}
	res, err := Boot(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accel != "tcg" || !strings.Contains(res.Fallback, "KVM gave no login prompt") {
		t.Errorf("result %+v", res)
	}
	// With a working KVM there is no fallback.
	fakePath(t, "login")
	res, err = Boot(context.Background(), o)
	if err != nil || res.Accel != "kvm" || res.Fallback != "" {
		t.Errorf("working KVM: %+v %v", res, err)
	}
}

// TestQEMUArgs: a disk, a kernel with its initramfs (a ramdisk build's
// outputs), or both; an ISO on a CD-ROM drive, booted first; a config
// drive and a network card; no network card unless asked; nothing, an
// initrd alone, or a kernel with an ISO is refused.
func TestQEMUArgs(t *testing.T) {
	dir := t.TempDir()
	img, kernel, initrd := filepath.Join(dir, "d.qcow2"), filepath.Join(dir, "r.kernel"), filepath.Join(dir, "r.initramfs")
	iso := filepath.Join(dir, "r.iso")
	for _, f := range []string{img, kernel, initrd, iso} {
		os.WriteFile(f, nil, 0o644)
	}
	cases := []struct {
		name    string
		o       Options
		want    string
		wantErr string
	}{
		{"disk", Options{Image: img}, "-drive file=" + img + ",format=qcow2,if=virtio,snapshot=on -nic none", ""},
		{"ramdisk", Options{Kernel: kernel, Initrd: initrd, Append: "troubleshoot"},
			"-kernel " + kernel + " -append console=ttyS0,115200 troubleshoot -initrd " + initrd + " -nic none", ""},
		{"kernel and disk", Options{Kernel: kernel, Image: img, Format: "raw"},
			"-kernel " + kernel + " -append console=ttyS0,115200 -drive file=" + img + ",format=raw,if=virtio,snapshot=on -nic none", ""},
		{"iso", Options{CDROM: iso}, "-drive file=" + iso + ",format=raw,media=cdrom,readonly=on -boot order=d -nic none", ""},
		{"iso before disk", Options{CDROM: iso, Image: img},
			"-drive file=" + img + ",format=qcow2,if=virtio,snapshot=on -drive file=" + iso + ",format=raw,media=cdrom,readonly=on -boot order=d -nic none", ""},
		// A config drive is a CD-ROM that is not booted; a NIC on
		// QEMU's user network with the MAC a network_data.json names.
		{"config drive and nic", Options{Image: img, ConfigDrive: iso, NIC: true},
			"-drive file=" + img + ",format=qcow2,if=virtio,snapshot=on -drive file=" + iso + ",format=raw,media=cdrom,readonly=on -nic user,model=virtio-net-pci,mac=52:54:00:12:34:56", ""},
		{"missing config drive", Options{Image: img, ConfigDrive: iso + ".gone"}, "", "no such file"},
		{"iso and kernel", Options{CDROM: iso, Kernel: kernel}, "", "not both"},
		{"nothing", Options{}, "", "nothing to boot"},
		{"initrd alone", Options{Initrd: initrd}, "", "needs a kernel"},
		{"missing kernel", Options{Kernel: kernel + ".gone"}, "", "no such file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			argv, err := c.o.qemuArgs()
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil || strings.Join(argv, " ") != c.want {
				t.Errorf("argv %q %v\nwant %q", strings.Join(argv, " "), err, c.want)
			}
		})
	}
}

func TestRamdiskPair(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "deploy")
	os.WriteFile(base+".initramfs", nil, 0o644)
	if _, _, ok := RamdiskPair(base + ".initramfs"); ok {
		t.Error("pair without the kernel")
	}
	os.WriteFile(base+".kernel", nil, 0o644)
	for _, p := range []string{base + ".initramfs", base + ".kernel"} {
		k, i, ok := RamdiskPair(p)
		if !ok || k != base+".kernel" || i != base+".initramfs" {
			t.Errorf("%s: %s %s %v", p, k, i, ok)
		}
	}
	if _, _, ok := RamdiskPair(base + ".qcow2"); ok {
		t.Error("a disk image is not a ramdisk")
	}
}

// TestBootKernel boots a kernel and initramfs (the fake QEMU plays the
// guest) to the login prompt.
func TestBootKernel(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "r.kernel"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "r.initramfs"), nil, 0o644)
	fakePath(t, "login")
	res, err := Boot(context.Background(), Options{Kernel: filepath.Join(dir, "r.kernel"), Initrd: filepath.Join(dir, "r.initramfs"), Timeout: 5 * time.Second, WorkDir: t.TempDir()})
	if err != nil || res.LoginPrompt <= 0 {
		t.Fatalf("%+v %v", res, err)
	}
}
