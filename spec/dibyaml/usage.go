package dibyaml

import (
	"fmt"
	"strings"
)

// Usage returns the help of dib's disk-image-create or
// ramdisk-image-create: DIB's options, each with the Dibfile key it sets.
func Usage(program string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s [OPTION]... ELEMENT...\n\n", program)
	if program == RamdiskImageCreate {
		b.WriteString("Builds a kernel and ramdisk from diskimage-builder elements, as diskimage-builder's\n")
	} else {
		b.WriteString("Builds a disk image from diskimage-builder elements, as diskimage-builder's\n")
	}
	fmt.Fprintf(&b, `%s does, with the same options and environment. dib turns the command line
into a Dibfile (--print-dibfile shows it), prints the plan, then builds it (as root).

Options (the Dibfile key each one sets is in brackets):
  -a ARCH                  architecture: amd64, arm64, armhf, … (default: the host's) [arch]
  -o NAME                  output name, may include a directory (default image) [name]
  -t TYPE[,TYPE…]          output formats: qcow2, raw, vhd, vhdx, vmdk, vdi, tar, tgz,
                           squashfs, docker, aci, iso (default qcow2) [outputs]
  -x                       trace the element scripts; twice for more [debug-trace]
  -u                       do not compress the qcow2 image [outputs: compress: false]
  -c                       ignore the environment (DIB re-executes with an empty one)
`, program)
	if program != RamdiskImageCreate {
		b.WriteString(`  -n                       do not add the base element [skip-base]
  -p PKG[,PKG…]            extra packages installed after install.d; repeatable [packages]
`)
	}
	b.WriteString(`  --checksum               write .md5 and .sha256 files [checksum]
  --image-size GB          disk size in GiB (default: computed from the tree) [image-size]
  --image-extra-size GB    extra GiB over the computed size [env DIB_IMAGE_EXTRA_SIZE]
  --image-cache DIR        download cache (default ~/.cache/image-create) [image-cache]
  --max-online-resize N    ext4 resize limit in blocks (mkfs -E resize=N) [max-online-resize]
  --min-tmpfs GB           build in a tmpfs only with this much room [min-tmpfs]
  --mkfs-journal-size MB   ext4 journal size (default 64) [env DIB_JOURNAL_SIZE]
  --mkfs-options OPTS      extra options for mkfs of the root filesystem [mkfs-options]
  --no-tmpfs               build on disk, not in a tmpfs [tmpfs: false]
  --offline                do not refresh cached downloads [offline]
  --qemu-img-options K=V,… options of qemu-img convert -o [outputs: qemu-img-options]
  --root-label LABEL       root filesystem label (default cloudimg-rootfs) [root-label]
  --ramdisk-element NAME   the element that builds the ramdisk (default ramdisk) [ramdisk-element]
  --install-type TYPE      source or package (default source) [install-types]
  --docker-target REPO:TAG image name of the docker output [outputs: target]
  --logfile FILE           write the build log to FILE [logfile]
  -h, --help               this help
  --version                dib's version

dib's additions:
  --print-dibfile          print the equivalent Dibfile and build nothing
  --print-plan             print the plan and build nothing
  --allow-unknown-release  build a release dib does not list for its distribution

Environment:
  ELEMENTS_PATH            element directories searched before the built-in ones,
                           colon-separated [elements-path]
  DIB_*                    passed to the build [env]; DIB_RELEASE and
                           DIB_DISTRIBUTION_MIRROR choose the release and mirror
  ARCH, IMAGE_NAME, ROOT_LABEL, FS_TYPE, SKIP_BASE, RAMDISK_ELEMENT,
  MAX_ONLINE_RESIZE, QEMU_IMG_OPTIONS
                           defaults of the options above, as in diskimage-builder
  break=POINT[,POINT…]     open a shell before-PHASE, after-PHASE or after-error

At least one operating-system element (debian-minimal, ubuntu-minimal, …) must be
among the elements. Exit status: 0 when the image was built, 1 otherwise.

Examples:
`)
	if program == RamdiskImageCreate {
		fmt.Fprintf(&b, "  %s -o deploy ramdisk debian-minimal\n", program)
	} else {
		fmt.Fprintf(&b, "  %s -a amd64 -o debian-vm vm debian-minimal\n", program)
		fmt.Fprintf(&b, "  DIB_RELEASE=noble %s -t qcow2,raw --checksum -o out/ubuntu vm ubuntu-minimal\n", program)
		fmt.Fprintf(&b, "  %s --print-dibfile -o web vm debian-minimal > Dibfile\n", program)
	}
	return b.String()
}
