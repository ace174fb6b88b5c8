// Package plan is the data model of a dib build plan: the only contract
// between the compiler and the runtime.
//
// A Plan is a plain value. The compiler fills it from a Dibfile and the
// element trees; `dib plan -o plan.json` writes it; `dib apply plan.json`
// executes it without reading any Dibfile or element directory, because the
// plan carries everything: the resolved elements, every hook file with its
// content, the environment, the root-filesystem bootstrap, the disk layout
// with computed offsets, the outputs and the host tools.
//
// Steps are content-addressed: a step's ID is a digest of its kind, its
// parameters, the content of every file it uses, the environment it sees and
// the IDs of the steps it depends on (see Hash). Same inputs give the same ID
// on any machine; any change changes the ID of that step and of everything
// downstream. That is what `dib diff` compares and what a cache keys on.
package plan

import (
	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/spec/diag"
)

// FormatVersion is the version of the plan JSON format. `dib apply` refuses
// a plan file of another format version.
const FormatVersion = 2

// Plan is the compiled build of one image.
type Plan struct {
	FormatVersion int    `json:"format_version"`
	DibVersion    string `json:"dib_version"`
	// ID is the digest of the image name and the IDs of all steps: two plans
	// with the same ID build the same image.
	ID string `json:"id"`

	Image    Image     `json:"image"`
	Elements []Element `json:"elements"`
	// Provides lists the virtual names and who provides them (DIB's
	// element-provides), sorted by name.
	Provides []Provision `json:"provides,omitempty"`
	Env      []EnvVar    `json:"env"`

	// Files is the merged hook tree ($TMP_HOOKS_PATH), sorted by path. The
	// runtime recreates it from Blobs.
	Files []File `json:"files"`

	// Steps in execution order (a topological order of the step graph).
	Steps []Step `json:"steps"`

	HostTools []HostTool `json:"host_tools"`
	Outputs   []Output   `json:"outputs"`

	// Epoch is the outputs' SOURCE_DATE_EPOCH (the Dibfile's
	// source-date-epoch, or where the runtime takes it from); the
	// partition, bootloader and output steps carry it in their parameters.
	Epoch

	// Cache holds the build cache's settings from the Dibfile (not hashed:
	// they decide what is reused, not what is built).
	Cache *CacheSettings `json:"cache,omitempty"`

	// PackageDifferences are the deliberate differences between the
	// packages this plan installs and those upstream DIB installs for the
	// same elements, release and options (docs/packages.md), each with its
	// reason. Everything else is meant to be DIB's set, name for name.
	PackageDifferences []PackageDifference `json:"package_differences,omitempty"`

	// Diagnostics are the warnings the compiler found (errors stop it).
	Diagnostics diag.Diagnostics `json:"diagnostics,omitempty"`

	// Blobs holds the content of every file, keyed by its sha256 (hex).
	// encoding/json writes map keys sorted, so the JSON stays deterministic.
	Blobs map[string][]byte `json:"blobs,omitempty"`

	// Secrets holds the real values of secret variables, in memory only:
	// it is never written to a plan file or rendered. A plan read from a
	// file has none; the runtime reads from-env secrets when it applies.
	Secrets map[string]string `json:"-"`
}

// CacheSettings are the Dibfile's cache: key.
type CacheSettings struct {
	// MaxAgeSeconds bounds the age of reused results of steps that talk to
	// a package mirror (cache.max-age; 0: the runtime's default, 7 days).
	MaxAgeSeconds int64 `json:"max_age_seconds,omitempty"`
	// Registry is the OCI registry repository steps missing from the
	// local cache are pulled from (cache.registry; `dib apply
	// --cache-from` and DIB_CACHE_REGISTRY override it).
	Registry string `json:"registry,omitempty"`
}

// PackageDifference is one deliberate difference from DIB's package set.
type PackageDifference struct {
	// Packages are the package names concerned.
	Packages []string `json:"packages"`
	// Change is "added" (dib installs them, DIB does not) or "left out".
	Change string `json:"change"`
	// Element is the element whose rule differs.
	Element string `json:"element,omitempty"`
	Reason  string `json:"reason"`
}

// Image describes what is built, in the user's terms.
type Image struct {
	Name    string `json:"name"`
	Distro  string `json:"distro"`  // the operating-system element, e.g. debian-minimal
	Family  string `json:"family"`  // debian, ubuntu, redhat, suse, gentoo, …
	Release string `json:"release"` // DIB_RELEASE
	Arch    string `json:"arch"`    // DIB's ARCH (amd64, arm64, …)
	// Requested is the element list as the user gave it; Input is the list
	// handed to element expansion (with base, the vm defaults and the
	// ramdisk element), as DIB builds it.
	Requested []string `json:"requested"`
	Input     []string `json:"input"`
	Ramdisk   bool     `json:"ramdisk,omitempty"`
	Source    string   `json:"source,omitempty"` // the Dibfile path
}

// Element is one expanded element.
type Element struct {
	Name     string   `json:"name"`
	Source   string   `json:"source"` // "builtin" or the elements-path directory
	Provides []string `json:"provides,omitempty"`
	Deps     []string `json:"deps,omitempty"`
}

// Provision is one virtual name and the element that provides it.
type Provision struct {
	Name string   `json:"name"`
	By   []string `json:"by"`
}

// Redacted replaces secret values everywhere a plan is shown or stored.
const Redacted = "<secret>"

// EnvVar is one variable the build's scripts see, with where it came from.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"` // Redacted when Secret
	// Secret values never appear in a plan, nor anything derived from
	// them: step IDs see only that the variable is a secret (see Seal).
	Secret bool `json:"secret,omitempty"`
	// Missing is set for a secret whose source (e.g. from-env) was not
	// available when the plan was made; `dib apply` refuses such a plan
	// unless the value is supplied then.
	Missing bool   `json:"missing,omitempty"`
	FromEnv string `json:"from_env,omitempty"`
	Origin  Origin `json:"origin"`
	// Overrides is the value an environment.d file replaced (Origin.Kind
	// "environment.d"): the value the build starts from. The runtime
	// exports Overrides, never the derived value itself, and lets the
	// environment.d files derive it again before every phase, as DIB does;
	// a variable only an environment.d file sets is not exported at all.
	Overrides *EnvVar `json:"overrides,omitempty"`
	// Identity marks a variable that names the image or its outputs
	// (IdentityVariables) or that the environment.d files derive from
	// one: it tells images apart without shaping their trees, so the
	// build cache keys a step on it only where something the step runs
	// mentions it (runtime/cache).
	Identity bool `json:"identity,omitempty"`
}

// IdentityVariables are DIB's variables that name the image and its
// outputs, not what goes into it: IMAGE_NAME (the output path),
// IMAGE_TYPES (the formats) and DOCKER_TARGET (the docker output's tag).
// Two images of one Dibfile differ in them even where every hook builds
// the same tree.
func IdentityVariables() []string { return []string{"IMAGE_NAME", "IMAGE_TYPES", "DOCKER_TARGET"} }

// Derived reports whether an environment.d file set the value.
func (v EnvVar) Derived() bool { return v.Origin.Kind == OriginEnvironmentD }

// Input returns the variable as the build starts with it (before the
// environment.d files run) and whether it has one.
func (v EnvVar) Input() (EnvVar, bool) {
	if !v.Derived() {
		return v, true
	}
	if v.Overrides != nil {
		return *v.Overrides, true
	}
	return EnvVar{}, false
}

// OriginEnvironmentD is the Origin.Kind of a value an element's
// environment.d file set; File is then the file's path in the hook tree
// ("environment.d/10-debian-minimal.bash").
const OriginEnvironmentD = "environment.d"

// Origin says where a value came from.
type Origin struct {
	Kind    string `json:"kind"` // "dibfile", "default", "element", "dib", "environment.d"
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Col     int    `json:"column,omitempty"`
	Element string `json:"element,omitempty"`
	Note    string `json:"note,omitempty"`
}

// String renders the origin for humans: "Dibfile:12:5", "element dpkg", "default".
func (o Origin) String() string {
	switch o.Kind {
	case "dibfile":
		d := diag.Diagnostic{File: o.File, Line: o.Line, Col: o.Col}
		return d.Position()
	case "element":
		return "element " + o.Element
	case OriginEnvironmentD:
		return "element " + o.Element + ", " + o.File
	default:
		if o.Note != "" {
			return o.Kind + " (" + o.Note + ")"
		}
		return o.Kind
	}
}

// File is one file of the merged hook tree.
type File struct {
	Path    string `json:"path"`              // slash-separated, relative to $TMP_HOOKS_PATH
	Mode    uint32 `json:"mode"`              // permission bits (and fs.ModeDir/ModeSymlink)
	Link    string `json:"link,omitempty"`    // symlink target
	SHA256  string `json:"sha256,omitempty"`  // content digest; the content is in Plan.Blobs
	Size    int64  `json:"size"`              //
	Element string `json:"element,omitempty"` // the element it was copied from
}

// Where a step's commands run.
const (
	Host   = "host"
	Chroot = "chroot"
)

// Step kinds.
const (
	KindBootstrap  = "bootstrap"  // create the root filesystem tree
	KindHooks      = "hooks"      // write the merged hook tree
	KindPhase      = "phase"      // run one DIB phase's scripts
	KindPackages   = "packages"   // install the Dibfile's packages (DIB's -p)
	KindImageSize  = "image-size" // compute the image size from the tree
	KindPartition  = "partition"  // create the image file and partition tables
	KindBootloader = "bootloader" // install the boot loader code
	KindOutput     = "output"     // write one output format
	KindChecksum   = "checksum"   // checksum files of an output
	KindManifest   = "manifest"   // write the build manifests
)

// Step is one node of the build graph. Exactly one of the typed parameter
// fields is set, matching Kind.
//
// Every field the runtime reads is hashed into ID (see Hash); Title and
// Origin are cosmetic and stay outside it.
type Step struct {
	ID    string   `json:"id"`
	Kind  string   `json:"kind"`
	Title string   `json:"title"`
	Where string   `json:"where,omitempty"` // Host or Chroot
	Deps  []string `json:"deps,omitempty"`  // IDs of the steps this one needs
	// Tools are the external programs this step runs.
	Tools []string `json:"tools,omitempty"`
	// Env lists the names of the variables the step sees (values in Plan.Env).
	Env []string `json:"env,omitempty"`
	// Origin is what asked for the step (a Dibfile line, an element).
	Origin *Origin `json:"origin,omitempty"`
	// Snapshot marks a snapshot point: the build cache keeps the state
	// after this step (the tree and the hook tree), so a later build whose
	// plan shares the steps up to here restores it and runs only the
	// rest. The compiler chooses the points (MarkCachePoints); like Title,
	// it does not change what the step builds and is not hashed.
	Snapshot bool `json:"snapshot,omitempty"`
	// SnapshotAfter names scripts of a phase step after which the build
	// cache keeps the state too: a later build whose plan changes only a
	// script after one of them restores that state and runs the phase
	// from the next script. Chosen by the compiler; not hashed.
	SnapshotAfter []string `json:"snapshot_after,omitempty"`
	// Mirror marks a step that downloads from a package mirror: its
	// cached result (and everything built on it) is reused only for
	// Plan.Cache.MaxAge. Not hashed.
	Mirror bool `json:"mirror,omitempty"`

	Bootstrap  *Bootstrap  `json:"bootstrap,omitempty"`
	Hooks      *Hooks      `json:"hooks,omitempty"`
	Phase      *Phase      `json:"phase,omitempty"`
	Packages   *Packages   `json:"packages,omitempty"`
	ImageSize  *ImageSize  `json:"image_size,omitempty"`
	Partition  *Partition  `json:"partition,omitempty"`
	Bootloader *Bootloader `json:"bootloader,omitempty"`
	Output     *Output     `json:"output,omitempty"`
	Checksum   *Checksum   `json:"checksum,omitempty"`
	Manifest   *Manifest   `json:"manifest,omitempty"`
}

// Bootstrap creates the root filesystem tree.
type Bootstrap struct {
	Provider   string   `json:"provider"` // "mmdebstrap", "dnf", "none", or a provider not available yet
	Family     string   `json:"family"`
	Suite      string   `json:"suite"`
	Mirror     string   `json:"mirror"`
	Components []string `json:"components,omitempty"`
	Variant    string   `json:"variant,omitempty"`
	Include    []string `json:"include,omitempty"`
	Keyrings   []string `json:"keyrings,omitempty"`
	// ExtraArgs are further mmdebstrap options (from
	// DIB_DEBOOTSTRAP_EXTRA_ARGS, mapped).
	ExtraArgs []string `json:"extra_args,omitempty"`
	// Sources are further apt source lines bootstrapped from together
	// with Mirror (the release's updates and security suites), so the tree
	// starts up to date.
	Sources []string `json:"sources,omitempty"`
	Arch    string   `json:"arch"`
	// Available is false for families whose provider dib does not have yet;
	// the plan still shows them, `dib apply` refuses with Reason.
	Available bool   `json:"available"`
	Reason    string `json:"reason,omitempty"`
	// DNF is set for the "dnf" provider (RPM families, DIB's yum-minimal).
	DNF *DNF `json:"dnf,omitempty"`
}

// Hooks writes the merged hook tree (Plan.Files) to $TMP_HOOKS_PATH, plus the
// files the runtime generates from the plan for the element helpers
// (package lists, pkg-map and svc-map tables).
type Hooks struct {
	Files     int              `json:"files"`
	Generated []GeneratedFile  `json:"generated,omitempty"`
	Warnings  diag.Diagnostics `json:"warnings,omitempty"`
}

// GeneratedFile is a file the runtime writes into the hook tree.
type GeneratedFile struct {
	Path    string `json:"path"`
	Content string `json:"content"`
}

// Phase runs one DIB phase (root.d … cleanup.d).
type Phase struct {
	Name         string    `json:"name"` // e.g. "install.d"
	Where        string    `json:"where"`
	EnvironmentD []EnvFile `json:"environment_d"`
	Scripts      []Script  `json:"scripts"`
	Skipped      []Skipped `json:"skipped,omitempty"`
	// Packages installed or removed in this phase by package-installs,
	// already mapped for the target distro.
	Packages []Package `json:"packages,omitempty"`
}

// Script is one hook run in a phase.
type Script struct {
	Name    string `json:"name"`
	Element string `json:"element"`
	Path    string `json:"path"` // in the hook tree, e.g. "install.d/10-foo"
	SHA256  string `json:"sha256"`
}

// EnvFile is one environment.d file sourced before a phase's scripts.
type EnvFile struct {
	Name    string `json:"name"`
	Element string `json:"element"`
	Path    string `json:"path"`
	SHA256  string `json:"sha256"`
}

// Skipped is a file in a phase directory that dib-run-parts does not run.
type Skipped struct {
	Name    string `json:"name"`
	Element string `json:"element,omitempty"`
	Reason  string `json:"reason"`
}

// Package is one package name after pkg-map.
type Package struct {
	Name      string   `json:"name"`    // as the element wrote it
	Mapped    []string `json:"mapped"`  // final names for the distro (empty: dropped)
	Element   string   `json:"element"` // whose package-installs asked for it
	Uninstall bool     `json:"uninstall,omitempty"`
	MapNote   string   `json:"map_note,omitempty"` // e.g. "redhat family, from element bootloader's pkg-map"
}

// Packages installs the Dibfile's extra packages after install.d.
type Packages struct {
	Names []string `json:"names"`
}

// ImageSize fixes or computes the size of the disk image.
type ImageSize struct {
	// Bytes is the size when the Dibfile gives it; 0 when it is computed
	// at build time by Rule.
	Bytes  int64  `json:"bytes,omitempty"`
	Rule   string `json:"rule"`
	FSType string `json:"fs_type"`
	EFI    bool   `json:"efi,omitempty"`
	// JournalMiB is DIB_JOURNAL_SIZE, the ext4 journal added to a
	// computed size (and given to mkfs as -J size=); 0 means DIB's 64.
	JournalMiB int64 `json:"journal_mib,omitempty"`
	// ExtraMiB is DIB_IMAGE_EXTRA_SIZE: when set, the computed size is the
	// tree's usage plus this many MiB instead of the usage / 0.6.
	ExtraMiB float64 `json:"extra_mib,omitempty"`
}

// Partition creates the image file(s) and partition tables of Layout. When
// the size is computed at build time, Layout is the layout at PreviewSize
// and the runtime resolves Template again at the real size
// (layout.Resolve).
type Partition struct {
	Layout      *layout.Layout `json:"layout"`
	PreviewSize int64          `json:"preview_size,omitempty"`
	SizeKnown   bool           `json:"size_known"`
	// Source says where the block-device config came from.
	Source string `json:"source"`
	// Template is the layout before the image size is known.
	Template *layout.Template `json:"template"`
	// Config is the block-device config as YAML text, which the runtime
	// hands to elements as DIB's config.yaml; it never parses it.
	Config string `json:"config"`
	// Params are the values merged into the config.
	Params PartitionParams `json:"params"`
	// MaxOnlineResize is ext4's -E resize= (0: unset).
	MaxOnlineResize int64 `json:"max_online_resize,omitempty"`
	// Epoch is the plan's SOURCE_DATE_EPOCH: the clock of every
	// filesystem of the disk, the time newer files are clamped to
	// (runtime/disk).
	Epoch
}

// PartitionParams are the parameters disk-image-create hands to the
// block-device code besides the config.
type PartitionParams struct {
	RootLabel  string `json:"root_label,omitempty"`
	RootFSType string `json:"root_fs_type"`
	RootFSOpts string `json:"root_fs_opts,omitempty"`
}

// Bootloader installs boot code for the firmware kinds the layout supports.
type Bootloader struct {
	BIOS    bool   `json:"bios"`
	UEFI    bool   `json:"uefi"`
	Cmdline string `json:"cmdline,omitempty"`
	Timeout int    `json:"timeout"`
	Serial  bool   `json:"serial,omitempty"`
	// SerialConsole is the console= value GRUB and the kernel use, as
	// DIB's bootloader element sets it (DIB_BOOTLOADER_SERIAL_CONSOLE,
	// default ttyS0,115200 on x86, ttyAMA0,115200 on arm64, hvc0 on POWER).
	SerialConsole string `json:"serial_console,omitempty"`
	// TimerCheck keeps the kernel's timer check: no no_timer_check
	// argument (DIB_NO_TIMER_CHECK=False).
	TimerCheck bool `json:"timer_check,omitempty"`
	// Epoch is the plan's SOURCE_DATE_EPOCH: the time of the files
	// written on the EFI system partition.
	Epoch
}

// Output is one final artefact.
type Output struct {
	Format string `json:"format"` // qcow2, raw, vhd, tar, tgz, squashfs, docker, aci, iso, …
	Path   string `json:"path"`   // final file name, DIB's naming (NAME.qcow2, NAME.squash, …)
	// Compress asks for a compressed qcow2.
	Compress       bool              `json:"compress,omitempty"`
	QemuImgOptions map[string]string `json:"qemu_img_options,omitempty"`
	Subformat      string            `json:"subformat,omitempty"`
	DockerTarget   string            `json:"docker_target,omitempty"`
	Checksums      []string          `json:"checksums,omitempty"` // md5, sha256
	// Epoch is the plan's SOURCE_DATE_EPOCH: archive entries newer than
	// it get its time.
	Epoch
}

// EpochFromPackages is Epoch.SourceDateEpochFrom when the Dibfile sets no
// source-date-epoch: the runtime takes SOURCE_DATE_EPOCH from the tree, as
// the build date of the newest installed package (runtime/sde), so the
// packages' files keep their modification times and everything the build
// wrote gets that date.
const EpochFromPackages = "packages"

// Epoch is SOURCE_DATE_EPOCH as a plan gives it: a number (the Dibfile's
// source-date-epoch, SourceDateEpochFrom empty) or where the runtime takes
// it from at build time (SourceDateEpochFrom, e.g. EpochFromPackages).
// Either way, modification times later than it become it (clamped, as tar
// --clamp-mtime and Debian's reproducible builds do); earlier ones are
// kept.
type Epoch struct {
	SourceDateEpoch     int64  `json:"source_date_epoch,omitempty"`
	SourceDateEpochFrom string `json:"source_date_epoch_from,omitempty"`
}

// Checksum writes NAME.EXT.ALG files beside an output.
type Checksum struct {
	Path       string   `json:"path"`
	Algorithms []string `json:"algorithms"`
}

// Manifest writes the build manifests (/etc/dib-manifests and NAME.d/).
type Manifest struct {
	Dir string `json:"dir"`
}

// HostTool is an external program some step runs, with its Debian package.
type HostTool struct {
	Program string   `json:"program"`
	Package string   `json:"package"`
	Steps   []string `json:"steps"` // titles of the steps using it
	// Found is filled by `dib plan` when it checks the host (not hashed).
	Found *bool `json:"found,omitempty"`
}
