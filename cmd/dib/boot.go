package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/dibuild/dib/runtime/boot"
)

// BootCmd boots an image in QEMU and waits for a login prompt.
type BootCmd struct {
	Image       string        `arg:"" optional:"" name:"image" type:"existingfile" help:"Disk image to boot (raw, qcow2, vmdk, vhd, vhdx, vdi), or a ramdisk build's NAME.initramfs (booted with NAME.kernel)."`
	Kernel      string        `type:"existingfile" placeholder:"FILE" help:"Boot this kernel directly (QEMU -kernel), e.g. a ramdisk build's NAME.kernel."`
	Initrd      string        `type:"existingfile" placeholder:"FILE" help:"The initramfs for --kernel, e.g. NAME.initramfs."`
	CDROM       string        `name:"cdrom" type:"existingfile" placeholder:"FILE" help:"Boot this ISO image from a CD-ROM drive (an IMAGE ending in .iso is booted so too)."`
	ConfigDrive string        `name:"config-drive" type:"existingfile" placeholder:"FILE" help:"Attach this image as a CD-ROM drive that is not booted, e.g. an OpenStack config drive (an ISO labelled config-2) for glean or cloud-init."`
	NIC         bool          `name:"nic" help:"Attach a virtio network card (MAC 52:54:00:12:34:56) on QEMU's user network (10.0.2.0/24, gateway 10.0.2.2); without it the guest has none."`
	Append      string        `placeholder:"ARGS" help:"Kernel command line arguments for --kernel, after console=ttyS0,115200."`
	UEFI        bool          `name:"uefi" help:"Boot with OVMF (UEFI) instead of the BIOS."`
	Timeout     time.Duration `default:"300s" help:"Give up after this long."`
	Login       string        `placeholder:"USER:PASS" help:"Log in on the serial console after the prompt."`
	Command     string        `placeholder:"CMD" help:"Run CMD in the guest after logging in; it must exit 0."`
	Console     bool          `help:"Copy the guest's serial console to standard error."`
	NoKVM       bool          `name:"no-kvm" env:"DIB_BOOT_NO_KVM" help:"Use TCG even when /dev/kvm is usable (nested KVM can hang guests)."`
	Format      string        `placeholder:"FMT" help:"Image format for QEMU (default: from the file name)."`
}

// Help is shown by `dib boot --help`.
func (BootCmd) Help() string {
	return `Starts qemu-system-x86_64 on a copy-on-write view of IMAGE (KVM when
/dev/kvm is usable, TCG otherwise; OVMF with --uefi), or on a kernel and
initramfs (--kernel/--initrd, or a ramdisk build's NAME.initramfs as IMAGE),
or on an ISO in a CD-ROM drive (--cdrom, or an IMAGE ending in .iso),
reads the serial
console and succeeds when a login prompt appears, printing the time it
took. With --login it logs in, and with --command runs a command that must
exit 0. On failure it prints the end of the console log. QEMU is always
stopped before dib exits.

Examples:
  dib boot image.qcow2
  dib boot --uefi --login devuser:secret --command 'systemctl is-system-running --wait' image.raw
  dib boot deploy-ramdisk.initramfs
  dib boot --uefi --cdrom deploy-ramdisk.iso
  dib boot --nic --config-drive config-2.iso --login devuser:secret --command hostname image.qcow2
  dib boot --kernel deploy-ramdisk.kernel --initrd deploy-ramdisk.initramfs --append troubleshoot`
}

// Run boots the image.
func (c BootCmd) Run(g *Globals) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var console io.Writer
	if c.Console {
		console = g.Stderr
	}
	image, kernel, initrd, cdrom := c.Image, c.Kernel, c.Initrd, c.CDROM
	if k, i, ok := boot.RamdiskPair(image); ok && kernel == "" {
		image, kernel, initrd = "", k, i
	}
	if strings.EqualFold(filepath.Ext(image), ".iso") && cdrom == "" {
		image, cdrom = "", image
	}
	if image == "" && kernel == "" && cdrom == "" {
		fmt.Fprintln(g.Stderr, "dib boot: give an image, a ramdisk's NAME.initramfs, an ISO (--cdrom), or --kernel")
		return exitError{code: exitUsage}
	}
	res, err := boot.Boot(ctx, boot.Options{Image: image, Kernel: kernel, Initrd: initrd, CDROM: cdrom, ConfigDrive: c.ConfigDrive, NIC: c.NIC, Append: c.Append, UEFI: c.UEFI, Timeout: c.Timeout, Login: c.Login,
		Command: c.Command, NoKVM: c.NoKVM, Format: c.Format, Console: console})
	if err != nil {
		var be *boot.Error
		if errors.As(err, &be) {
			fmt.Fprintln(g.Stderr, be.Error())
			return exitError{code: exitFailed}
		}
		return err
	}
	if res.Fallback != "" {
		fmt.Fprintf(g.Stderr, "dib boot: %s\n", res.Fallback)
	}
	fmt.Fprintf(g.Stdout, "login prompt after %.1fs (%s)\n", res.LoginPrompt.Seconds(), res.Accel)
	if c.Command != "" {
		fmt.Fprint(g.Stdout, res.CommandOutput)
	}
	return nil
}
