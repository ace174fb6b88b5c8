// Package starter writes the first Dibfile of a project (`dib init`): a
// commented file for a chosen distribution and disk layout that says what
// each key means and its diskimage-builder equivalent.
package starter

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/dibuild/dib/compiler"
)

// Layouts are the disk layouts a starter Dibfile can have: the
// block-device presets, and "none" for a root filesystem tarball.
func Layouts() []string {
	return []string{"efi", "gpt", "mbr", "efi-4k", "efi-lvm", "none"}
}

// Options choose the starter Dibfile.
type Options struct {
	// Distro is the operating-system element (default debian-minimal).
	Distro string
	// Release is the distribution's release (default: DIB's default).
	Release string
	// Layout is one of Layouts (default efi).
	Layout string
	// Name is the image name (default DISTRO-vm, DISTRO-rootfs for none).
	Name string
	// SchemaURL is written in the yaml-language-server modeline.
	SchemaURL string
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// complete fills o's defaults (the distro's release, a name from the
// distro) and checks them; buildable is false for a distro dib plans but
// cannot build yet.
func complete(o Options) (Options, bool, error) {
	if o.Distro == "" {
		o.Distro = "debian-minimal"
	}
	if o.Layout == "" {
		o.Layout = "efi"
	}
	if !slices.Contains(Layouts(), o.Layout) {
		return o, false, fmt.Errorf("unknown layout %q: one of %s", o.Layout, strings.Join(Layouts(), ", "))
	}
	distroName, release, buildable, ok := compiler.DistroDefaults(o.Distro)
	if !ok {
		return o, false, fmt.Errorf("dib does not know the operating-system element %q", o.Distro)
	}
	if o.Release == "" {
		o.Release = release
	}
	if o.Release != "" && !compiler.KnownRelease(distroName, o.Release) {
		return o, false, fmt.Errorf("unknown release %q of %s", o.Release, distroName)
	}
	if o.Name == "" {
		o.Name = distroName + "-vm"
		if o.Layout == "none" {
			o.Name = distroName + "-rootfs"
		}
	}
	if !nameRE.MatchString(o.Name) {
		return o, false, fmt.Errorf("invalid image name %q: letters, digits, '.', '_', '+' and '-'", o.Name)
	}
	return o, buildable, nil
}

// Dibfile returns the starter Dibfile for o.
func Dibfile(o Options) ([]byte, error) {
	o, buildable, err := complete(o)
	if err != nil {
		return nil, err
	}
	disk := o.Layout != "none"

	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	if o.SchemaURL != "" {
		w("# yaml-language-server: $schema=%s\n", o.SchemaURL)
	}
	w(`# A Dibfile: one image, built from diskimage-builder (DIB) elements.
#   dib validate       check it (every problem, with its line)
#   dib plan           see what the build will do, step by step
#   sudo dib apply     build it
# Every key, with its DIB flag or variable: docs/dibfile.md, or dib help.

# Output basename: %[1]s.qcow2, %[1]s.d/ (manifests), %[1]s.log. DIB: -o
name: %[1]s

# The operating-system element, and its release (DIB_RELEASE).
distro: %[2]s
`, o.Name, o.Distro)
	if o.Release != "" {
		w("release: %s\n", quote(o.Release))
	}
	if !buildable {
		w("# Note: this version of dib plans %s images but cannot build them yet.\n", o.Distro)
	}
	w(`
# Elements to add, in order (DIB: the positional arguments). Each pulls in
# its element-deps. dib elements --list shows the built-in ones.
`)
	if disk {
		w(`elements:
  - vm              # bootable: kernel and bootloader
  # - growroot      # grow / to fill the disk at first boot
  # - cloud-init    # configure from the cloud's metadata
  # - devuser       # a login user, set by DIB_DEV_USER_* below
`)
	} else {
		w(`# elements:
#   - devuser       # a login user, set by DIB_DEV_USER_* below
`)
	}
	w(`
# The build's environment: DIB_* variables, as exported for DIB. A secret is
# read from dib's own environment and never printed.
# env:
#   DIB_DEV_USER_USERNAME: devuser
#   DIB_DEV_USER_PASSWORD: {secret: true, from-env: DEV_PASSWORD}
#   DIB_DEV_USER_PWDLESS_SUDO: "yes"

# Extra packages, installed after install.d (DIB: -p).
# packages: [vim, curl]
`)
	if disk {
		w(`
# The disk layout: mbr, gpt, efi (BIOS and UEFI boot), efi-4k, efi-lvm, or an
# inline DIB block-device configuration (DIB_BLOCK_DEVICE_CONFIG).
block-device: %s
%s
# Output formats, in order (DIB: -t): qcow2, raw, vhd, vhdx, vmdk, vdi, tar,
# tgz, squashfs, docker, aci, iso.
outputs: [qcow2]
`, o.Layout, sizeComment(o.Layout))
	} else {
		w(`
# No disk: the root filesystem as a tarball (DIB: -t tar), or docker, tgz.
outputs: [tar]
`)
	}
	w(`
# Checksum files next to each output (DIB: --checksum).
# checksum: [sha256]
`)
	return []byte(b.String()), nil
}

// sizeComment is the image-size paragraph: efi-lvm's 40G root partition
// needs a size set.
func sizeComment(layout string) string {
	if layout == "efi-lvm" {
		return `
# Disk size (DIB: --image-size, in GiB): efi-lvm's root partition is 40G.
image-size: 64GiB
`
	}
	return `
# Disk size; left out, it is computed from the tree as DIB does (DIB:
# --image-size, in GiB).
# image-size: 4GiB
`
}

// quote keeps a release such as "9-stream" or "12" a string in YAML.
func quote(s string) string {
	if regexp.MustCompile(`^[a-z][a-z0-9-]*$`).MatchString(s) {
		return s
	}
	return `"` + s + `"`
}
