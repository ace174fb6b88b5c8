package blockdev

import (
	"fmt"

	"github.com/dibuild/dib/compiler/plan/layout"
)

// sizeOf is a config value as a layout.Size: strings are read as DIB
// reads them, numbers are bytes, anything else is DIB's error.
func sizeOf(v any) layout.Size {
	switch v.(type) {
	case string:
		return layout.Size{Spec: pyStr(v), Kind: layout.SizeText}
	case int64, int, uint64, float64:
		return layout.Size{Spec: pyStr(v), Kind: layout.SizeNumber}
	}
	return layout.Size{Spec: pyRepr(v), Kind: layout.SizeInvalid}
}

// ParseSize parses an absolute size ("4GiB", "1.75TB", "512", "10 MiB")
// to bytes exactly as DIB's parse_abs_size_spec (layout.Size.Bytes).
func ParseSize(v any) (int64, error) { return sizeOf(v).Bytes() }

// DIB's image size rule constants (disk-image-create).
const (
	// imageSizeJournal is added for an ext4 root: DIB creates it with a
	// 64 MiB journal (-J size=64).
	imageSizeJournal = 64 << 20
	// imageSizeEFI is added when the block-device-efi element is used, for
	// the ESP and BIOS boot partitions.
	imageSizeEFI = 525 << 20
	// imageSizeRound is the granularity the result is rounded up to.
	imageSizeRound = 64 << 10
)

// DefaultRootFSOpts returns the root-fs-opts disk-image-create passes: for
// an ext4 root, "-i 4096 -J size=64 " followed by the user's mkfs options
// (MKFS_OPTS); for other types just the user's options.
func DefaultRootFSOpts(fsType, extra string) string {
	return RootFSOpts(fsType, extra, DefaultJournalMiB, "")
}

// DefaultJournalMiB is the ext4 journal size DIB uses unless
// DIB_JOURNAL_SIZE says otherwise.
const DefaultJournalMiB = 64

// RootFSOpts is disk-image-create's root-fs-opts with the journal of
// DIB_JOURNAL_SIZE (journalMiB) and DIB's trusty exception: for an ext4
// root "-i 4096 -J size=N " then MKFS_OPTS, with "-O ^metadata_csum " in
// front for release trusty (its fsck does not know the feature).
func RootFSOpts(fsType, extra string, journalMiB int64, release string) string {
	if fsType != "ext4" {
		return extra
	}
	opts := fmt.Sprintf("-i 4096 -J size=%d %s", journalMiB, extra)
	if release == "trusty" {
		opts = "-O ^metadata_csum " + opts
	}
	return opts
}

// FormatBytes renders a byte count for humans: exact binary units when it
// divides evenly, else MiB with two decimals.
func FormatBytes(n int64) string {
	switch {
	case n == 0:
		return "0 B"
	case n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n%(1<<10) == 0 && n < 1<<20:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
}
