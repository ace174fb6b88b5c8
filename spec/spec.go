// Package spec is the typed form of a Dibfile: the YAML file that describes
// one disk image, or several under "images:".
//
// Load parses a Dibfile with goccy/go-yaml keeping every source position,
// validates it against the embedded JSON Schema (package schema, the single
// source of truth of the format), applies the defaults (defaults.go, the one
// place where they live) and decodes it into File. Later stages that find a
// problem in a Dibfile value report it with a JSON pointer; File.Locate turns
// that pointer back into the line and column of the user's file.
//
// Every key has a DIB equivalent, documented in docs/dibfile.md.
package spec

import (
	"time"

	"github.com/dibuild/dib/compiler/plan/format"
)

// File is a loaded, valid Dibfile.
type File struct {
	// Path is the file name as given to Load; it is the File of every
	// diagnostic about this Dibfile.
	Path string
	// Images are the images the file describes, in file order. A file
	// without "images:" has exactly one, whose Pointer is "".
	Images []*Image

	pos *positions
}

// Image is one image to build: everything disk-image-create or
// ramdisk-image-create can be told, as typed fields. Defaults are already
// applied (see ApplyDefaults).
type Image struct {
	// Pointer is the JSON pointer of this image's object in the file:
	// "" for a single-image file, "/images/N" inside "images:". Values that
	// came from "defaults:" are located through KeyPointer.
	Pointer string
	// keys maps each key written for this image to the JSON pointer of
	// its value (in the image or in "defaults:").
	keys map[string]string

	// Name is the output basename (DIB: -o, IMAGE_NAME). Default "image".
	Name string
	// Distro is the operating-system element with its release and mirror.
	// Element is "" when the file names no distro (the OS element is then
	// expected among Elements, as DIB allows).
	Distro Distro
	// Arch is DIB's architecture name as written (DIB: -a, ARCH); the
	// default is the host's, normalised like DIB (x86_64 -> amd64).
	Arch string
	// Elements are the extra elements, in file order (DIB: positional
	// arguments). Distro.Element and the block-device element are not in
	// this list; ElementNames returns the complete list.
	Elements []string
	// ElementsPath are extra element directories searched before the
	// built-in ones (DIB: ELEMENTS_PATH), in file order.
	ElementsPath []string
	// Env are the environment variables given to the build, sorted by name.
	Env []EnvVar
	// InstallTypes selects source or package installs (DIB:
	// --install-type, DIB_DEFAULT_INSTALLTYPE, DIB_INSTALLTYPE_<prefix>).
	InstallTypes InstallTypes
	// Packages are installed in the chroot after install.d (DIB: -p).
	Packages []string

	// BlockDevice is the disk layout; nil when the file has no
	// "block-device" key (DIB then uses a block-device-* element from
	// Elements, or its built-in single-filesystem fallback).
	BlockDevice *BlockDevice
	// ImageSize is the disk size in bytes; 0 means "computed from the
	// tree" as DIB does (DIB: --image-size, DIB_IMAGE_SIZE).
	ImageSize int64
	// RootLabel is the root filesystem label; "" means DIB's default
	// (cloudimg-rootfs, img-rootfs for xfs) (DIB: --root-label).
	RootLabel string
	// FSType is the root filesystem type (DIB: FS_TYPE). Default ext4.
	FSType string
	// MkfsOptions are extra options for mkfs of the root filesystem
	// (DIB: --mkfs-options, MKFS_OPTS).
	MkfsOptions string
	// MaxOnlineResize is ext4's -E resize= (DIB: --max-online-resize);
	// 0 means unset.
	MaxOnlineResize int64

	// Outputs are the image formats to write, in file order (DIB: -t).
	// Default: one qcow2.
	Outputs []Output
	// Checksum lists the checksum files to write next to each output,
	// "md5" and/or "sha256" in that order; nil for none (DIB: --checksum,
	// DIB_CHECKSUM).
	Checksum []string

	// Ramdisk builds with ramdisk-image-create semantics.
	Ramdisk bool
	// RamdiskElement replaces the "ramdisk" element (DIB:
	// --ramdisk-element); "" means DIB's default.
	RamdiskElement string
	// SkipBase leaves out the "base" element (DIB: -n, SKIP_BASE).
	SkipBase bool
	// Offline does not refresh cached resources (DIB: --offline).
	Offline bool
	// Tmpfs builds in a tmpfs (DIB: the opposite of --no-tmpfs). Default true.
	Tmpfs bool
	// MinTmpfs is the minimum tmpfs size in GB (DIB: --min-tmpfs). Default 2.
	MinTmpfs int64
	// ImageCache is the cache directory; "" means DIB's default
	// ~/.cache/image-create (DIB: --image-cache, DIB_IMAGE_CACHE).
	ImageCache string
	// DebugTrace is the shell trace level 0..2 (DIB: -x, DIB_DEBUG_TRACE).
	DebugTrace int
	// Logfile receives the build log (DIB: --logfile, LOGFILE).
	Logfile string
	// CacheMaxAge bounds the age of reused build-cache results of steps
	// that download from a package mirror (cache.max-age); 0 means the
	// runtime's default (7 days).
	CacheMaxAge time.Duration
	// CacheRegistry is the OCI registry repository (REGISTRY/REPO, or
	// http://HOST:PORT/REPO for plain HTTP) that build-cache entries
	// missing locally are pulled from (cache.registry).
	CacheRegistry string
	// SourceDateEpoch is the outputs' SOURCE_DATE_EPOCH (seconds): the
	// time later modification times are clamped to (source-date-epoch).
	// nil: not set; the build takes it from the installed packages.
	SourceDateEpoch *int64
}

// Distro is the operating-system element and the variables DIB derives
// from the short form.
type Distro struct {
	// Element is the OS element, e.g. "debian-minimal", "ubuntu-minimal".
	Element string
	// Release is DIB_RELEASE ("bookworm", "noble", "9-stream"); "" when unset.
	Release string
	// Mirror is DIB_DISTRIBUTION_MIRROR; "" when unset.
	Mirror string
}

// EnvVar is one environment variable of the build. Exactly one of Value and
// FromEnv is the source: a value written in the file, or a variable of the
// environment dib runs in.
type EnvVar struct {
	Name string
	// Value is the value: written in the file, or resolved from FromEnv
	// at load time. Never print it when Secret is true.
	Value string
	// Secret values are redacted in plans, diffs, logs and manifests.
	// Variables whose name contains PASSWORD are always secret, as DIB's
	// devuser password is.
	Secret bool
	// FromEnv names the variable of dib's own environment the value is
	// read from; "" when the value is written in the file.
	FromEnv string
	// Missing is true when FromEnv is not set in dib's environment. That
	// is not an error at load time (a plan can be made without the
	// secret); the runtime refuses to build with a missing value.
	Missing bool
	// Line and Col locate the variable's key in the Dibfile.
	Line, Col int
}

// String renders the variable as NAME=VALUE, with the value of a secret
// replaced by "<secret>", so that logging an EnvVar never leaks it.
func (e EnvVar) String() string {
	switch {
	case e.Secret:
		return e.Name + "=<secret>"
	case e.Missing:
		return e.Name + "=<missing $" + e.FromEnv + ">"
	}
	return e.Name + "=" + e.Value
}

// InstallTypes is DIB's install-type selection.
type InstallTypes struct {
	// Default is "source" or "package" (DIB_DEFAULT_INSTALLTYPE). Default "source".
	Default string
	// Overrides set the type per install-dir prefix
	// (DIB_INSTALLTYPE_<prefix>), sorted by prefix.
	Overrides []InstallTypeOverride
}

// InstallTypeOverride is one DIB_INSTALLTYPE_<Prefix>=<Type>.
type InstallTypeOverride struct {
	Prefix string
	Type   string
}

// BlockDevice is the disk layout: either a preset naming one of DIB's
// block-device-* elements, or an inline DIB block-device configuration.
type BlockDevice struct {
	// Preset is "mbr", "gpt", "efi", "efi-4k" or "efi-lvm" (the element
	// "block-device-"+Preset); "" for an inline configuration.
	Preset string
	// Config is the decoded YAML of an inline configuration (a []any of
	// single-key map[string]any, tree or graph syntax, as
	// DIB_BLOCK_DEVICE_CONFIG); nil for a preset. Only its top-level shape
	// is validated here; the compiler validates the rest.
	Config any
	// Pointer is the JSON pointer of the "block-device" value, so the
	// compiler can locate an error inside Config with
	// File.Locate(Pointer + "/1/partitioning/partitions/0/size").
	Pointer string
}

// Output is one image format to write.
type Output struct {
	// Format is one of OutputFormats.
	Format string
	// Compress compresses the qcow2 image (qemu-img convert -c). Default
	// true for qcow2, as DIB (COMPRESS_IMAGE); always false for others.
	Compress bool
	// QemuImgOptions are passed to qemu-img convert -o, sorted by key
	// (DIB: --qemu-img-options).
	QemuImgOptions []KeyValue
	// Target is the docker repository:tag (DIB: --docker-target).
	Target string
	// Subformat is the qemu-img subformat option for vhd/vhdx/vmdk
	// (e.g. "fixed", "dynamic", "streamOptimized"); "" for the default.
	Subformat string
	// Pointer is the JSON pointer of this output in the file.
	Pointer string
}

// KeyValue is one option of a key=value list, kept in a sorted slice so
// that renderings never depend on map order.
type KeyValue struct {
	Key, Value string
}

// Element returns the block-device element of a preset
// ("block-device-efi"), or "" for an inline configuration.
func (b *BlockDevice) Element() string {
	if b == nil || b.Preset == "" {
		return ""
	}
	return "block-device-" + b.Preset
}

// ElementNames returns every element the image asks for, in the order DIB
// would be given them: the distro element, the block-device preset
// element, then Elements, then the elements that write an output asked
// for (OutputElement). Duplicates are kept once, first occurrence wins.
func (img *Image) ElementNames() []string {
	var out []string
	seen := map[string]bool{}
	add := func(e string) {
		if e != "" && !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	add(img.Distro.Element)
	add(img.BlockDevice.Element())
	for _, e := range img.Elements {
		add(e)
	}
	for _, o := range img.Outputs {
		add(OutputElement(o.Format))
	}
	return out
}

// OutputElement names the element whose hooks write an output format (the
// iso element writes NAME.iso in cleanup.d), or "" for the formats dib
// writes itself.
func OutputElement(name string) string {
	f, _ := format.Lookup(name)
	return f.Element
}

// KeyPointer returns the JSON pointer of the value the image got for a
// Dibfile key ("block-device", "outputs", ...): inside the image's own
// object, or inside "defaults:" when inherited. It returns "" when the key
// was not written and its value is a default.
func (img *Image) KeyPointer(key string) string {
	return img.keys[key]
}
