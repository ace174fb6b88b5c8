package spec

import (
	"runtime"
	"strings"

	"github.com/dibuild/dib/compiler/plan/dibenv"
)

// Defaults, in the one place they are applied. Each is DIB's own default
// for the equivalent flag or variable (dib-reference.md §2.1); those DIB
// exports to hooks come from the one table of them (compiler/plan/dibenv).
const (
	DefaultName        = "image"            // disk-image-create -o
	DefaultOutput      = dibenv.ImageType   // IMAGE_TYPES
	DefaultInstallType = dibenv.InstallType // DIB_DEFAULT_INSTALLTYPE
	DefaultFSType      = dibenv.FSType      // FS_TYPE
	DefaultMinTmpfs    = dibenv.MinTmpfsGB  // DIB_MIN_TMPFS, GB
)

// ApplyDefaults fills every field the Dibfile left unset with DIB's
// default: name "image", the host's architecture, one compressed qcow2
// output, source installs, ext4, a 2 GB minimum tmpfs, and a docker target
// "<name>:latest". Tmpfs (default true) and Output.Compress (default true)
// are set while decoding, where "unset" can still be told from "false".
func ApplyDefaults(img *Image) {
	if img.Name == "" {
		img.Name = DefaultName
	}
	if img.Arch == "" {
		img.Arch = HostArch()
	}
	if len(img.Outputs) == 0 {
		img.Outputs = []Output{{Format: DefaultOutput, Compress: true}}
	}
	for i := range img.Outputs {
		if img.Outputs[i].Format == "docker" && img.Outputs[i].Target == "" {
			img.Outputs[i].Target = img.Name + ":latest"
		}
	}
	if img.InstallTypes.Default == "" {
		img.InstallTypes.Default = DefaultInstallType
	}
	if img.FSType == "" {
		img.FSType = DefaultFSType
	}
	if img.MinTmpfs == 0 {
		img.MinTmpfs = DefaultMinTmpfs
	}
}

// HostArch returns the architecture of the machine dib runs on, in DIB's
// words: the `uname -m` name normalised as DIB's lib/common-defaults does.
func HostArch() string {
	uname := map[string]string{
		"amd64": "x86_64", "arm64": "aarch64", "arm": "armv7l", "386": "i686",
		"ppc64le": "ppc64le", "ppc64": "ppc64", "s390x": "s390x",
	}[runtime.GOARCH]
	if uname == "" {
		uname = runtime.GOARCH
	}
	return NormalizeArch(uname)
}

// NormalizeArch maps a `uname -m` style name to DIB's (Debian's) name:
// x86_64 -> amd64, aarch64 -> arm64, armv* -> armhf; others are kept.
func NormalizeArch(arch string) string {
	switch {
	case arch == "x86_64":
		return "amd64"
	case arch == "aarch64":
		return "arm64"
	case strings.HasPrefix(arch, "armv"):
		return "armhf"
	}
	return arch
}
