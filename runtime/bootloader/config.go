package bootloader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// DefaultCmdline is DIB's DIB_BOOTLOADER_DEFAULT_CMDLINE.
const DefaultCmdline = "nofb nomodeset gfxpayload=text"

// DefaultTimeout is DIB's DIB_GRUB_TIMEOUT.
const DefaultTimeout = 5

// ConfigInput is what a generated grub.cfg depends on.
type ConfigInput struct {
	// BootUUID/BootLabel identify the filesystem holding /boot;
	// BootSeparate is true when it is mounted at /boot (paths lose the
	// /boot prefix).
	BootUUID, BootLabel string
	BootSeparate        bool
	// Root is the root= value, e.g. "LABEL=cloudimg-rootfs".
	Root string
	// Kernels are versions with vmlinuz-V (and maybe initrd.img-V),
	// default first; Initrd[V] says whether initrd.img-V exists.
	Kernels []string
	Initrd  map[string]bool
	Cmdline string
	Serial  string // e.g. "ttyS0,115200"; "" none
	// VirtualTerminal is the console before the serial one (DIB's
	// DIB_BOOTLOADER_VIRTUAL_TERMINAL, default tty0); "none" omits it.
	VirtualTerminal string
	Timeout         int
	// TimeoutStyle is DIB_GRUB_TIMEOUT_STYLE (menu, countdown, hidden);
	// "" leaves GRUB's default.
	TimeoutStyle string
}

var serialRE = regexp.MustCompile(`^ttyS([0-9]+)(?:,([0-9]+))?`)

// Config renders a grub.cfg: one menu entry per kernel, the default
// first, the serial terminal when asked, the kernel command line as DIB's
// bootloader element makes it (console=tty0 console=SERIAL no_timer_check
// before DIB_BOOTLOADER_DEFAULT_CMDLINE).
func Config(c ConfigInput) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# grub.cfg written by dib\nset default=0\nset timeout=%d\n", c.Timeout)
	if c.TimeoutStyle != "" {
		fmt.Fprintf(&b, "set timeout_style=%s\n", c.TimeoutStyle)
	}
	args := "root=" + c.Root + " ro"
	if m := serialRE.FindStringSubmatch(c.Serial); m != nil {
		speed := m[2]
		if speed == "" {
			speed = "115200"
		}
		fmt.Fprintf(&b, "serial --unit=%s --speed=%s\nterminal_input serial console\nterminal_output serial console\n", m[1], speed)
		vt := c.VirtualTerminal
		if vt == "" {
			vt = "tty0"
		}
		if vt != "none" {
			args += " console=" + vt
		}
		args += " console=" + c.Serial + " no_timer_check"
	}
	if c.Cmdline != "" {
		args += " " + c.Cmdline
	}
	search := "search --no-floppy --fs-uuid --set=root " + c.BootUUID
	if c.BootUUID == "" {
		search = "search --no-floppy --label --set=root " + c.BootLabel
	}
	b.WriteString(search + "\n")
	prefix := "/boot"
	if c.BootSeparate {
		prefix = ""
	}
	for _, v := range c.Kernels {
		fmt.Fprintf(&b, "\nmenuentry 'Linux %s' --id 'dib-%s' {\n\t%s\n\techo 'Loading Linux %s ...'\n\tlinux %s/vmlinuz-%s %s\n",
			v, v, search, v, prefix, v, args)
		if c.Initrd[v] {
			fmt.Fprintf(&b, "\tinitrd %s/initrd.img-%s\n", prefix, v)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

func (i *install) writeConfig() error {
	dir := filepath.Join(i.in.Root, "boot/grub")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg := i.in.GrubCfg
	bootDir := filepath.Join(i.in.Root, "boot")
	i.res.Kernels = kernels(bootDir)
	if cfg == nil {
		if len(i.res.Kernels) == 0 {
			return errors.New("no kernel (boot/vmlinuz-*) in the image: install one (e.g. linux-image-amd64) or pass a grub.cfg")
		}
		root := i.in.Layout.RootFilesystem()
		spec := "LABEL=" + root.Label
		if i.in.RootByUUID || root.Label == "" {
			spec = "UUID=" + root.UUID
		}
		c := ConfigInput{
			BootUUID: i.boot.UUID, BootLabel: i.boot.Label, BootSeparate: i.boot.MountPoint == "/boot",
			Root: spec, Kernels: i.res.Kernels, Initrd: map[string]bool{},
			Cmdline: i.in.Cmdline, Serial: i.in.SerialConsole, Timeout: i.in.Timeout,
			VirtualTerminal: i.in.VirtualTerminal, TimeoutStyle: i.in.TimeoutStyle,
		}
		if c.Cmdline == "" {
			c.Cmdline = DefaultCmdline
		}
		if c.Timeout < 0 {
			c.Timeout = DefaultTimeout
		}
		for _, v := range c.Kernels {
			c.Initrd[v] = exists(filepath.Join(bootDir, "initrd.img-"+v))
		}
		cfg = []byte(Config(c))
	}
	return os.WriteFile(filepath.Join(dir, "grub.cfg"), cfg, 0o644)
}
