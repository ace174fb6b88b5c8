// Package dibenv is the one table of DIB's defaults: the values
// disk-image-create and its lib/common-defaults and img-defaults export to
// every hook unless the build sets them. spec applies them to a Dibfile,
// the compiler records them in the plan's environment, and the runtime
// falls back on them for a plan that lacks them (a hand-written one), so
// all three agree.
//
// A leaf package of constants: spec, the compiler and the runtime may all
// import it.
package dibenv

// DIB's defaults, by the variable DIB exports them in.
const (
	InstallType   = "source" // DIB_DEFAULT_INSTALLTYPE
	FSType        = "ext4"   // FS_TYPE
	ImageType     = "qcow2"  // IMAGE_TYPE (img-defaults) and IMAGE_TYPES
	MinTmpfsGB    = 2        // DIB_MIN_TMPFS, GB
	LCAll         = "C"      // LC_ALL: disk-image-create's "for consistent sorting"
	DebugTrace    = 0        // DIB_DEBUG_TRACE
	Checksum      = "0"      // DIB_CHECKSUM: no checksum files
	PythonVersion = "3"      // DIB_PYTHON_VERSION
	// SerialConsole is the bootloader element's
	// DIB_BOOTLOADER_SERIAL_CONSOLE on x86 (arm64 and ppc64 have their own).
	SerialConsole = "ttyS0,115200"
)
