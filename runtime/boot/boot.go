// Package boot boots a disk image in QEMU and watches its serial console
// until a login prompt appears: dib's boot test.
//
// QEMU runs through runtime/shell (so it is killed with its process group
// when the test ends, whatever happens); the guest's first serial port is
// a unix socket QEMU serves and this package reads, because a login prompt
// ends without a newline and shell's output is line based. The image is
// opened with snapshot=on: booting never changes it.
package boot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/dibuild/dib/runtime/shell"
)

// Options say what to boot and what to check.
type Options struct {
	// Image is the disk to boot; with Kernel it is optional (attached as
	// a second disk when given).
	Image string
	// Kernel and Initrd boot a kernel directly (QEMU -kernel/-initrd), as
	// a ramdisk build's NAME.kernel and NAME.initramfs are booted; Append
	// is added to the kernel command line after KernelConsole.
	Kernel, Initrd, Append string
	// CDROM is an ISO image to boot from (a CD-ROM drive; first in the
	// boot order when a disk is attached too).
	CDROM string
	// ConfigDrive is an image attached as a read-only CD-ROM drive that
	// is not booted: an OpenStack config drive (an ISO labelled
	// config-2) for glean or cloud-init.
	ConfigDrive string
	// NIC attaches a virtio network card (MAC NICMAC) on QEMU's user
	// network (10.0.2.0/24, gateway 10.0.2.2); without it the guest has
	// no network card.
	NIC bool
	// Format is the image format for QEMU; "" guesses from the file name
	// (.qcow2, .vmdk, .vhd, .vhdx, .vdi; raw otherwise).
	Format string
	// UEFI boots with OVMF instead of the BIOS.
	UEFI bool
	// Timeout bounds the whole test; 0 means 300 s.
	Timeout time.Duration
	// Login is "USER:PASSWORD"; with it the test logs in after the prompt.
	Login string
	// Command runs in the guest after login; its exit status must be 0.
	Command string
	// MemoryMiB is the guest memory; 0 means 1024.
	MemoryMiB int
	// NoKVM forces TCG even when /dev/kvm is usable.
	NoKVM bool
	// OVMFCode and OVMFVars override the firmware files.
	OVMFCode, OVMFVars string
	// Console receives everything the guest prints (optional).
	Console io.Writer
	// WorkDir holds the socket and the OVMF variables copy.
	WorkDir string
	Runner  *shell.Runner
	// KVMTrial bounds a KVM boot before falling back to TCG; 0 means
	// DefaultKVMTrial.
	KVMTrial time.Duration

	kvmUsable func() bool // tests replace the /dev/kvm probe
}

// Result is a successful boot.
type Result struct {
	// Accel is "kvm" or "tcg".
	Accel string
	// LoginPrompt is the time from starting QEMU to the login prompt.
	LoginPrompt time.Duration
	// CommandOutput is what Command printed.
	CommandOutput string
	// Fallback says why TCG was used although KVM was available.
	Fallback string
}

// Error is a failed boot: what went wrong and the end of the console log.
type Error struct {
	Reason string
	Tail   []string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("boot test: " + e.Reason)
	if len(e.Tail) > 0 {
		b.WriteString("\nlast console lines:")
		for _, l := range e.Tail {
			b.WriteString("\n  " + l)
		}
	}
	return b.String()
}

// OVMF firmware of Debian's ovmf package (4 MiB build, no secure boot).
const (
	DefaultOVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	DefaultOVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// KVMUsable reports whether /dev/kvm can be opened for reading and writing.
func KVMUsable() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

func guessFormat(p string) string {
	switch strings.ToLower(filepath.Ext(p)) {
	case ".qcow2":
		return "qcow2"
	case ".vmdk":
		return "vmdk"
	case ".vhd":
		return "vpc"
	case ".vhdx":
		return "vhdx"
	case ".vdi":
		return "vdi"
	}
	return "raw"
}

var (
	loginRE    = regexp.MustCompile(`(?m)login: *$`)
	passwordRE = regexp.MustCompile(`(?m)[Pp]assword: *$`)
	promptRE   = regexp.MustCompile(`(?m)[#$] *$`)
	rcRE       = regexp.MustCompile(`DIB-RC=([0-9]+)`)
	beginMark  = "DIB-BEGIN"
	ansiRE     = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)
)

// DefaultKVMTrial bounds the KVM attempt: a working KVM reaches a login prompt
// in well under a minute. On some nested-virtualisation hosts /dev/kvm
// opens but guests hang after GRUB; then Boot tries again with TCG.
const DefaultKVMTrial = 120 * time.Second

// Boot starts QEMU on the image and waits for a login prompt on the
// serial console (then logs in and runs the command when asked). QEMU is
// always killed before Boot returns. When KVM is used and gives no login
// prompt within Options.KVMTrial, Boot boots again with TCG in the time left.
func Boot(ctx context.Context, o Options) (Result, error) {
	if o.Timeout == 0 {
		o.Timeout = 300 * time.Second
	}
	usable := KVMUsable
	if o.kvmUsable != nil {
		usable = o.kvmUsable
	}
	if o.KVMTrial == 0 {
		o.KVMTrial = DefaultKVMTrial
	}
	kvm := !o.NoKVM && usable()
	if !kvm || o.Timeout <= o.KVMTrial {
		return bootOnce(ctx, o, kvm)
	}
	start := time.Now()
	trial := o
	trial.Timeout = o.KVMTrial
	res, err := bootOnce(ctx, trial, true)
	var be *Error
	if err == nil || !errors.As(err, &be) || ctx.Err() != nil || !strings.Contains(be.Reason, "no login prompt") {
		return res, err
	}
	o.Timeout -= time.Since(start)
	res, err = bootOnce(ctx, o, false)
	res.Fallback = fmt.Sprintf("KVM gave no login prompt in %s; booted with TCG", o.KVMTrial)
	return res, err
}

// NICMAC is the MAC address of the network card Options.NIC attaches
// (QEMU's default), for a config drive's network_data.json to name.
const NICMAC = "52:54:00:12:34:56"

// KernelConsole starts every direct kernel boot's command line: the
// console on the serial port Boot reads.
const KernelConsole = "console=ttyS0,115200"

// RamdiskPair returns the kernel and initramfs of a ramdisk build from the
// path of either (NAME.kernel, NAME.initramfs: ramdisk-image-create's
// names), when both exist.
func RamdiskPair(p string) (kernel, initrd string, ok bool) {
	var base string
	switch {
	case strings.HasSuffix(p, ".initramfs"):
		base = strings.TrimSuffix(p, ".initramfs")
	case strings.HasSuffix(p, ".kernel"):
		base = strings.TrimSuffix(p, ".kernel")
	default:
		return "", "", false
	}
	kernel, initrd = base+".kernel", base+".initramfs"
	for _, f := range []string{kernel, initrd} {
		if fi, err := os.Stat(f); err != nil || !fi.Mode().IsRegular() {
			return "", "", false
		}
	}
	return kernel, initrd, true
}

// qemuArgs returns what to boot: the disk, or the kernel and initramfs.
func (o Options) qemuArgs() ([]string, error) {
	var argv []string
	if o.Kernel == "" && o.Initrd != "" {
		return nil, errors.New("boot test: an initrd needs a kernel")
	}
	if o.Kernel == "" && o.Image == "" && o.CDROM == "" {
		return nil, errors.New("boot test: nothing to boot: give an image, an ISO or a kernel")
	}
	if o.Kernel != "" && o.CDROM != "" {
		return nil, errors.New("boot test: boot a kernel or an ISO, not both")
	}
	for _, f := range []string{o.Image, o.Kernel, o.Initrd, o.CDROM, o.ConfigDrive} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("boot test: %w", err)
		}
	}
	if o.Kernel != "" {
		cmdline := strings.TrimSpace(KernelConsole + " " + o.Append)
		argv = append(argv, "-kernel", o.Kernel, "-append", cmdline)
		if o.Initrd != "" {
			argv = append(argv, "-initrd", o.Initrd)
		}
	}
	if o.Image != "" {
		format := o.Format
		if format == "" {
			format = guessFormat(o.Image)
		}
		argv = append(argv, "-drive", "file="+o.Image+",format="+format+",if=virtio,snapshot=on")
	}
	if o.CDROM != "" {
		argv = append(argv, "-drive", "file="+o.CDROM+",format=raw,media=cdrom,readonly=on", "-boot", "order=d")
	}
	if o.ConfigDrive != "" {
		argv = append(argv, "-drive", "file="+o.ConfigDrive+",format=raw,media=cdrom,readonly=on")
	}
	if o.NIC {
		argv = append(argv, "-nic", "user,model=virtio-net-pci,mac="+NICMAC)
	} else {
		argv = append(argv, "-nic", "none")
	}
	return argv, nil
}

// bootOnce is one boot, with KVM or TCG. It is about 140 lines because a
// boot is one lifetime: the QEMU process, its console connection, the
// timeout and the deferred stop must all end together, and failures
// report the console's last lines with QEMU's own; the steps after the
// console opens (login, password, command) read as the dialogue they are.
func bootOnce(ctx context.Context, o Options, kvm bool) (Result, error) {
	what, err := o.qemuArgs()
	if err != nil {
		return Result{}, err
	}
	if o.Timeout == 0 {
		o.Timeout = 300 * time.Second
	}
	if o.MemoryMiB == 0 {
		o.MemoryMiB = 1024
	}
	var user, pass string
	if o.Login != "" {
		var ok bool
		if user, pass, ok = strings.Cut(o.Login, ":"); !ok {
			return Result{}, errors.New("boot test: --login wants USER:PASSWORD")
		}
	}
	if o.Command != "" && o.Login == "" {
		return Result{}, errors.New("boot test: a command needs --login")
	}
	work := o.WorkDir
	if work == "" {
		work = os.TempDir()
	}
	dir, err := os.MkdirTemp(work, "dib-boot-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)

	res := Result{Accel: "tcg"}
	if kvm {
		res.Accel = "kvm"
	}
	sock := filepath.Join(dir, "console.sock")
	argv := []string{"qemu-system-x86_64", "-machine", "q35,accel=" + res.Accel, "-m", fmt.Sprint(o.MemoryMiB),
		"-smp", "2", "-display", "none", "-monitor", "none", "-no-reboot",
		"-chardev", "socket,id=console,path=" + sock + ",server=on,wait=on", "-serial", "chardev:console"}
	argv = append(argv, what...)
	if res.Accel == "kvm" {
		// Without -arch-capabilities, QEMU 7.2 aborts under nested KVM
		// ("failed to set MSR 0x10a"); guests do not need the MSR.
		argv = append(argv, "-cpu", "host,-arch-capabilities")
	} else {
		argv = append(argv, "-cpu", "max")
	}
	if o.UEFI {
		code, vars := o.OVMFCode, o.OVMFVars
		if code == "" {
			code, vars = DefaultOVMFCode, DefaultOVMFVars
		}
		varsCopy := filepath.Join(dir, "OVMF_VARS.fd")
		b, err := os.ReadFile(vars)
		if err != nil {
			return Result{}, fmt.Errorf("boot test: UEFI needs OVMF (Debian package ovmf): %w", err)
		}
		if err := os.WriteFile(varsCopy, b, 0o600); err != nil {
			return Result{}, err
		}
		argv = append(argv, "-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+code,
			"-drive", "if=pflash,format=raw,unit=1,file="+varsCopy)
	}

	runner := o.Runner
	if runner == nil {
		runner = &shell.Runner{WaitDelay: 5 * time.Second}
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	qctx, stopQEMU := context.WithCancel(context.WithoutCancel(ctx))
	var qemuLog bytes.Buffer
	qemuDone := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := runner.Run(qctx, shell.Command{Argv: argv, Prefix: "qemu", Log: &qemuLog})
		qemuDone <- err
	}()
	defer func() {
		stopQEMU()
		<-qemuDone
	}()

	conn, err := dialRetry(ctx, sock, qemuDone)
	if err != nil {
		return Result{}, &Error{Reason: "QEMU did not start: " + err.Error(), Tail: tail(qemuLog.String(), 20)}
	}
	defer conn.Close()
	c := newConsole(conn, o.Console)
	fail := func(reason string) (Result, error) {
		t := tail(c.text(), 40)
		select {
		case err := <-qemuDone: // QEMU died: its own words matter most
			qemuDone <- err
			for _, l := range tail(qemuLog.String(), 10) {
				t = append(t, "qemu: "+l)
			}
		default:
		}
		return Result{}, &Error{Reason: reason, Tail: t}
	}
	if err := c.expect(ctx, loginRE); err != nil {
		return fail(fmt.Sprintf("no login prompt after %s (%s): %v", time.Since(start).Round(time.Second), res.Accel, err))
	}
	res.LoginPrompt = time.Since(start)
	if o.Login == "" {
		return res, nil
	}
	c.send(user + "\n")
	if err := c.expect(ctx, passwordRE); err != nil {
		return fail("no password prompt: " + err.Error())
	}
	c.send(pass + "\n")
	if err := c.expect(ctx, promptRE); err != nil {
		return fail("no shell prompt after login: " + err.Error())
	}
	if o.Command == "" {
		return res, nil
	}
	mark := c.mark()
	// The output is what comes between two markers the shell prints and
	// its echo of the typed line does not contain (the quotes split them).
	// The echo alone does not delimit it: a partial console line ending in
	// '#' or '$' (the kernel's "#1 SMP" line) can pass for the prompt, and
	// then the command is typed ahead while login still prints the motd,
	// which lands between the echo and the output.
	c.send("echo " + beginMark[:4] + `""` + beginMark[4:] + "; " + o.Command + "; echo DIB-RC=$?\n")
	if err := c.expect(ctx, rcRE); err != nil {
		return fail("command did not finish: " + err.Error())
	}
	out := c.since(mark)
	m := rcRE.FindStringSubmatch(out)
	body := out[:strings.LastIndex(out, "DIB-RC=")]
	if i := strings.LastIndex(body, beginMark); i >= 0 {
		body = body[i+len(beginMark):]
	}
	// Drop the rest of the marker's line.
	if i := strings.Index(body, "\n"); i >= 0 {
		body = body[i+1:]
	}
	res.CommandOutput = ansiRE.ReplaceAllString(strings.ReplaceAll(body, "\r", ""), "")
	if m[1] != "0" {
		return fail("command exited with status " + m[1])
	}
	return res, nil
}

func dialRetry(ctx context.Context, sock string, done <-chan error) (net.Conn, error) {
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			return c, nil
		}
		select {
		case err := <-done:
			if err == nil {
				err = errors.New("exited")
			}
			return nil, err
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// console accumulates what the guest prints and matches patterns against
// what arrived since the last match.
type console struct {
	conn    net.Conn
	mu      sync.Mutex
	buf     []byte
	pos     int // start of the unmatched part
	changed chan struct{}
	closed  error
}

func newConsole(conn net.Conn, copyTo io.Writer) *console {
	c := &console{conn: conn, changed: make(chan struct{}, 1)}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := conn.Read(b)
			c.mu.Lock()
			c.buf = append(c.buf, b[:n]...)
			if err != nil {
				c.closed = err
			}
			c.mu.Unlock()
			if copyTo != nil && n > 0 {
				copyTo.Write(b[:n])
			}
			select {
			case c.changed <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return c
}

func (c *console) expect(ctx context.Context, re *regexp.Regexp) error {
	for {
		c.mu.Lock()
		text := strings.ReplaceAll(string(c.buf[c.pos:]), "\r", "")
		loc := re.FindStringIndex(text)
		closed := c.closed
		if loc != nil {
			// Advance past the match (in raw bytes: count through \r).
			c.pos += rawOffset(c.buf[c.pos:], loc[1])
		}
		c.mu.Unlock()
		if loc != nil {
			return nil
		}
		if closed != nil {
			return fmt.Errorf("console closed: %v", closed)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.changed:
		}
	}
}

// rawOffset maps an offset in b without '\r' back to an offset in b.
func rawOffset(b []byte, n int) int {
	i := 0
	for seen := 0; i < len(b) && seen < n; i++ {
		if b[i] != '\r' {
			seen++
		}
	}
	return i
}

func (c *console) send(s string) { c.conn.Write([]byte(s)) }

func (c *console) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pos
}

func (c *console) since(mark int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.ReplaceAll(string(c.buf[mark:c.pos]), "\r", "")
}

func (c *console) text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf)
}

// tail returns the last n non-empty lines of s, without escape sequences.
func tail(s string, n int) []string {
	s = ansiRE.ReplaceAllString(strings.ReplaceAll(s, "\r", ""), "")
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}
