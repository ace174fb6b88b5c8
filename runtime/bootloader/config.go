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
	// InitrdFiles names the initramfs of a version in /boot when it is not
	// initrd.img-V (Red Hat's initramfs-V.img); it implies Initrd.
	InitrdFiles map[string]string
	// Titles are menu entry titles by version (from the image's Boot
	// Loader Specification entries); default "Linux V".
	Titles  map[string]string
	Cmdline string
	Serial  string // e.g. "ttyS0,115200"; "" none
	// TimerCheck: no no_timer_check argument.
	TimerCheck bool
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
	}
	vt := c.VirtualTerminal
	if vt == "" {
		vt = "tty0"
	}
	if vt != "none" {
		args += " console=" + vt
	}
	if c.Serial != "" {
		args += " console=" + c.Serial
	}
	if !c.TimerCheck {
		args += " no_timer_check"
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
		title := "Linux " + v
		if t := c.Titles[v]; t != "" {
			title = strings.ReplaceAll(t, "'", "")
		}
		fmt.Fprintf(&b, "\nmenuentry '%s' --id 'dib-%s' {\n\t%s\n\techo 'Loading Linux %s ...'\n\tlinux %s/vmlinuz-%s %s\n",
			title, v, search, v, prefix, v, args)
		if f := c.InitrdFiles[v]; f != "" {
			fmt.Fprintf(&b, "\tinitrd %s/%s\n", prefix, f)
		} else if c.Initrd[v] {
			fmt.Fprintf(&b, "\tinitrd %s/initrd.img-%s\n", prefix, v)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

func (i *install) writeConfig() error {
	dir, err := i.inImage("/boot/grub")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg := i.in.GrubCfg
	bootDir, err := i.inImage("/boot")
	if err != nil {
		return err
	}
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
			Cmdline: i.in.Cmdline, Serial: i.in.SerialConsole, TimerCheck: i.in.TimerCheck, Timeout: i.in.Timeout,
			VirtualTerminal: i.in.VirtualTerminal, TimeoutStyle: i.in.TimeoutStyle,
		}
		if c.Cmdline == "" {
			c.Cmdline = DefaultCmdline
		}
		if c.Timeout < 0 {
			c.Timeout = DefaultTimeout
		}
		if exists(filepath.Join(i.in.Root, "boot/grub2")) {
			// Red Hat's elements put kernel arguments in /etc/default/grub
			// for grub2-mkconfig (iscsi-boot's rd.iscsi.firmware=1): the
			// menu written here carries them too.
			if data, err := os.ReadFile(filepath.Join(i.in.Root, "etc/default/grub")); err == nil {
				have := c.Cmdline + " ro no_timer_check console=" + c.Serial
				if c.VirtualTerminal != "" {
					have += " console=" + c.VirtualTerminal
				} else {
					have += " console=tty0"
				}
				if extra := defaultGrubArgs(string(data), have); len(extra) > 0 {
					c.Cmdline = strings.TrimSpace(c.Cmdline + " " + strings.Join(extra, " "))
				}
			}
		}
		c.InitrdFiles, c.Titles = map[string]string{}, blsTitles(filepath.Join(bootDir, "loader/entries"))
		for _, v := range c.Kernels {
			c.Initrd[v] = exists(filepath.Join(bootDir, "initrd.img-"+v))
			if rh := "initramfs-" + v + ".img"; !c.Initrd[v] && exists(filepath.Join(bootDir, rh)) {
				c.InitrdFiles[v] = rh
			}
		}
		cfg = []byte(Config(c))
	}
	if err := os.WriteFile(filepath.Join(dir, "grub.cfg"), cfg, 0o644); err != nil {
		return err
	}
	// Red Hat's GRUB 2 reads /boot/grub2/grub.cfg (grub2-mkconfig's and
	// grubby's path): an image that has that directory gets the same file.
	if grub2 := filepath.Join(i.in.Root, "boot/grub2"); exists(grub2) {
		return os.WriteFile(filepath.Join(grub2, "grub.cfg"), cfg, 0o644)
	}
	return nil
}

// blsTitles reads the title of each Boot Loader Specification entry in dir
// (Red Hat's kernel-install writes /boot/loader/entries/ID-VERSION.conf),
// by the entry's version. Debian's GRUB has no blscfg command, so the
// entries become ordinary menu entries.
func blsTitles(dir string) map[string]string {
	titles := map[string]string{}
	files, _ := filepath.Glob(filepath.Join(dir, "*.conf"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var title, version string
		for _, line := range strings.Split(string(data), "\n") {
			key, val, _ := strings.Cut(strings.TrimSpace(line), " ")
			switch key {
			case "title":
				title = strings.TrimSpace(val)
			case "version":
				version = strings.TrimSpace(val)
			}
		}
		if title != "" && version != "" {
			titles[version] = title
		}
	}
	return titles
}

// defaultGrubArgs returns the kernel arguments of GRUB_CMDLINE_LINUX and
// GRUB_CMDLINE_LINUX_DEFAULT in an /etc/default/grub that are not in have
// (root= is dib's to set; variable references are dropped), in order.
func defaultGrubArgs(defaults, have string) []string {
	seen := map[string]bool{}
	for _, w := range strings.Fields(have) {
		seen[w] = true
	}
	var out []string
	for _, line := range strings.Split(defaults, "\n") {
		key, val, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || (key != "GRUB_CMDLINE_LINUX" && key != "GRUB_CMDLINE_LINUX_DEFAULT") {
			continue
		}
		val = strings.Trim(val, `"'`)
		for _, w := range strings.Fields(val) {
			if strings.HasPrefix(w, "$") || strings.HasPrefix(w, "root=") || seen[w] {
				continue
			}
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}
