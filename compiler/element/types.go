package element

import (
	"io/fs"
)

// BuiltinName is the Source name of dib's own elements, as shown to users.
const BuiltinName = "builtin"

// Source is one entry of the element search path (DIB's ELEMENTS_PATH).
type Source struct {
	// Name labels the entry for users: a directory path, or "builtin".
	Name string
	// FS is the directory; its root holds one directory per element.
	FS fs.FS
}

// Options are the inputs of Resolve.
type Options struct {
	// Path is the search path, first match wins (user entries, then builtin).
	Path []Source
	// Elements are the elements requested, as on the disk-image-create line.
	Elements []string
	// Arch is DIB's ARCH (-a); empty means amd64.
	Arch string
	// SkipBase leaves out the base element (disk-image-create -n).
	SkipBase bool
	// Ramdisk is a ramdisk-image-create build: the ramdisk element is prepended.
	Ramdisk bool
	// RamdiskElement is RAMDISK_ELEMENT; empty means "ramdisk".
	RamdiskElement string
	// DefaultInstallType is DIB_DEFAULT_INSTALLTYPE (--install-type); empty means "source".
	DefaultInstallType string
	// InstallTypes are the DIB_INSTALLTYPE_<prefix> overrides, keyed by the
	// install-dir prefix ("simple-init" or "simple_init": '_' counts as '-').
	InstallTypes map[string]string
}

// Phase names in DIB's run order, with where each runs.
var phaseOrder = [...]struct{ name, where string }{
	{"root.d", Host},
	{"extra-data.d", Host},
	{"pre-install.d", Chroot},
	{"install.d", Chroot},
	{"post-install.d", Chroot},
	{"post-root.d", Host},
	{"block-device.d", Host},
	{"pre-finalise.d", Host},
	{"finalise.d", Chroot},
	{"cleanup.d", Host},
}

// Where a phase runs.
const (
	Host   = "host"   // run_d: on the build host, TARGET_ROOT set
	Chroot = "chroot" // run_d_in_target: inside the image, hooks at /tmp/in_target.d
)

// Result is a resolved element set.
type Result struct {
	// Input is the element list handed to DIB's expansion: the requested
	// elements after the vm defaults rule, base and the ramdisk element.
	Input []string `json:"input"`
	// Expanded are the elements of the build, sorted bytewise.
	Expanded []string `json:"expanded"`
	// Provided are the names provided by expanded elements, sorted.
	Provided []string `json:"provided"`
	// ProvidedBy maps each provided name to the element(s) providing it.
	ProvidedBy map[string][]string `json:"provided_by"`
	// ElementOrder is the order DIB lists the expanded elements in
	// (IMAGE_ELEMENT): Python set order, here as with PYTHONHASHSEED=0.
	ElementOrder []string `json:"element_order"`
	// CopyOrder is the order generate_hooks merges the elements' hooks and
	// block_device_create_config_file searches them: bash
	// associative-array order of ElementOrder.
	CopyOrder []string `json:"copy_order"`
	// Elements are the expanded elements, sorted by name.
	Elements []Element `json:"elements"`
	// Files is the merged hook tree (DIB's TMP_HOOKS_PATH) as generate_hooks
	// leaves it, directories included, sorted by Path.
	Files []File `json:"files"`
	// Phases are the ten phases in run order.
	Phases []Phase `json:"phases"`
	// EnvironmentD is the environment.d order every phase after root.d
	// sources, with DIB's 11-dib-install-type.bash.
	EnvironmentD []EnvFile `json:"environment_d"`
	// EnvironmentDRoot is the environment.d order root.d sources.
	EnvironmentDRoot []EnvFile `json:"environment_d_root_phase"`
	// InstallTypeEnv is the environment.d/11-dib-install-type.bash that
	// disk-image-create writes after root.d.
	InstallTypeEnv File `json:"install_type_env"`
	// OtherDirs are the merged *.d directories dib-run-parts never runs
	// (binary-deps.d, init.d, udev.d, yum.repos.d, …), sorted by name.
	OtherDirs []DotDir `json:"other_dot_d_dirs"`
	// BlockDevice is the block-device config DIB would use when
	// DIB_BLOCK_DEVICE_CONFIG is not set.
	BlockDevice BlockDeviceConfig `json:"block_device"`
	// Failure is DIB's error, when resolution failed.
	Failure *Failure `json:"failure,omitempty"`
}

// Element is one expanded element.
type Element struct {
	Name string `json:"name"`
	// Source is the Name of the search-path entry it came from.
	Source string `json:"source"`
	// Dir is its directory inside that entry (normally Name).
	Dir string `json:"dir"`
	// FS is the element directory: element-deps, package-installs.yaml,
	// pkg-map, block-device-*.yaml, … are read from here.
	FS fs.FS `json:"-"`
	// Deps and Provides are element-deps and element-provides, file order.
	Deps     []string `json:"deps,omitempty"`
	Provides []string `json:"provides,omitempty"`
	// Hides names the later search-path entries that also have this
	// element, nearest first (DIB logs "Element <…> overrides <…>").
	Hides []string `json:"hides,omitempty"`
}

// File is one entry of the merged hook tree.
type File struct {
	// Path is relative to the hooks directory, slash-separated.
	Path string `json:"path"`
	// Mode has the type bits (fs.ModeDir, fs.ModeSymlink) and permissions.
	Mode fs.FileMode `json:"mode"`
	// LinkTarget is the target of a symlink, as stored.
	LinkTarget string `json:"link_target,omitempty"`
	// Content of a regular file.
	Content []byte `json:"-"`
	// SHA256 of Content, hex; empty for directories and symlinks.
	SHA256 string `json:"sha256,omitempty"`
	// Element that the entry came from (for a merged directory, the first).
	Element string `json:"element"`
}

// Phase is one phase directory and what dib-run-parts does with it.
type Phase struct {
	Name  string `json:"name"`
	Where string `json:"where"` // Host or Chroot
	// Present is false when no element has this directory: DIB skips the phase.
	Present bool `json:"present"`
	// Scripts is dib-run-parts' order on the tree generate_hooks builds.
	Scripts []Script `json:"scripts"`
	// Skipped are the entries dib-run-parts does not run, sorted by name.
	Skipped []Skipped `json:"skipped,omitempty"`
	// Run is what the build executes: Scripts after the install-types
	// element linked the chosen <prefix>-<type>-install scripts.
	Run []Script `json:"run"`
}

// Script is one script dib-run-parts runs.
type Script struct {
	// Name in the phase directory.
	Name string `json:"script"`
	// Element that provided the entry.
	Element string `json:"element"`
	// Path of the entry in the hook tree ("install.d/10-foo").
	Path string `json:"path"`
	// Target is the regular file that runs: Path, or where its symlink
	// chain ends inside the hook tree; empty when the link leaves the tree.
	Target string `json:"target,omitempty"`
	// LinkedBy is "install-types" for the links that element creates.
	LinkedBy string `json:"linked_by,omitempty"`
}

// Skipped is an entry of a phase directory that dib-run-parts does not run.
type Skipped struct {
	Name string `json:"name"`
	// Elements that provided it (several for a merged directory).
	Elements []string `json:"elements"`
	Reason   string   `json:"reason"`
}

// Reasons for Skipped, worded as the oracle words them.
const (
	ReasonName       = "name does not match ^[0-9A-Za-z_-]+$"
	ReasonNotExec    = "not executable (find -executable)"
	ReasonDirectory  = "directory (not -xtype f)"
	ReasonBroken     = "broken symlink (find -xtype f fails)"
	ReasonNotRegular = "not a regular file (not -xtype f)"
)

// EnvFile is one environment.d file in sourcing order.
type EnvFile struct {
	File    string `json:"file"`
	Element string `json:"element"` // "(disk-image-create)" for the install-type file
}

// InstallTypeEnvElement is EnvFile.Element of the file disk-image-create writes.
const InstallTypeEnvElement = "(disk-image-create)"

// DotDir is a merged *.d directory that no phase runs.
type DotDir struct {
	Name    string   `json:"name"`
	Entries []string `json:"entries"`
}

// FallbackBlockDevice is BlockDeviceConfig.Label when no element has a config.
const FallbackBlockDevice = "fallback (built-in local_loop+mkfs_root config)"

// BlockDeviceConfig is the block-device-*.yaml DIB would copy.
type BlockDeviceConfig struct {
	// Fallback is true when no element has one: DIB's built-in
	// local_loop + mkfs_root + "/" config applies.
	Fallback bool   `json:"fallback"`
	Element  string `json:"element,omitempty"`
	Source   string `json:"source,omitempty"`
	File     string `json:"file,omitempty"` // block-device-<arch>.yaml or block-device-default.yaml
	Content  []byte `json:"-"`
	ReadErr  error  `json:"-"` // the file could not be read (not a regular file, unreadable)
	// Label is "<source>:<element dir>/<file>", or FallbackBlockDevice.
	Label string `json:"label"`
}

// Failure is the error DIB itself would stop with.
type Failure struct {
	// Kind is DIB's exception class (MissingElementException,
	// AlreadyProvidedException, MissingOSException, InvalidElementDir), or
	// DuplicateHook / CopyError for generate_hooks failures.
	Kind string `json:"kind"`
	// Message is DIB's message, byte for byte (may be empty).
	Message string `json:"message"`
	// Logged are the ERROR lines DIB logs before raising, if any.
	Logged []string `json:"logged,omitempty"`
}

// Failure kinds.
const (
	KindMissingElement  = "MissingElementException"
	KindAlreadyProvided = "AlreadyProvidedException"
	KindMissingOS       = "MissingOSException"
	KindInvalidDir      = "InvalidElementDir"
	KindDuplicateHook   = "DuplicateHook"
	KindCopy            = "CopyError"
	KindRead            = "ReadError"
)
