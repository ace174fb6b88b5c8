package blockdev

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Size units as DIB's block_device/utils.py knows them. The binary ones
// carry "i"; K/M/G/T and KB/MB/GB/TB are decimal; B or no unit is bytes.
// Units are case-sensitive, as in DIB.
var sizeUnits = map[string]int64{
	"TiB": 1 << 40, "GiB": 1 << 30, "MiB": 1 << 20, "KiB": 1 << 10,
	"TB": 1e12, "GB": 1e9, "MB": 1e6, "KB": 1e3,
	"T": 1e12, "G": 1e9, "M": 1e6, "K": 1e3,
	"B": 1, "": 1,
}

// sizeRe is DIB's size_unit_spec_re: digits and dots, an optional space,
// then a unit made of letters, digits and underscores.
var sizeRe = regexp.MustCompile(`^([\d.]*) ?([a-zA-Z0-9_]*)$`)

// ParseSize parses an absolute size ("4GiB", "1.75TB", "512", "10 MiB")
// to bytes exactly as DIB's parse_abs_size_spec: the number is a float,
// multiplied by the unit and truncated; an empty number means 1. Integers
// (YAML `size: 1024`) are taken as bytes.
func ParseSize(v any) (int64, error) {
	switch t := v.(type) {
	case int64:
		return t, nil
	case int:
		return int64(t), nil
	case uint64:
		return int64(t), nil
	case float64:
		return int64(t), nil
	case string:
		m := sizeRe.FindStringSubmatch(t)
		if m == nil {
			return 0, fmt.Errorf("Invalid size unit spec [%s]", t)
		}
		unit, ok := sizeUnits[m[2]]
		if !ok {
			return 0, fmt.Errorf("unit_str [%s] not known", m[2])
		}
		n := 1.0
		if m[1] != "" {
			f, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				return 0, fmt.Errorf("could not convert string to float: '%s'", m[1])
			}
			n = f
		}
		r := float64(unit) * n
		if r >= math.MaxInt64 {
			return 0, fmt.Errorf("size [%s] too large", t)
		}
		return int64(r), nil
	}
	return 0, fmt.Errorf("size must be a string like 4GiB, got %s", pyRepr(v))
}

// ParseRelSize parses a size that may be relative: "N%" is N percent of
// avail (DIB's parse_rel_size_spec: int(avail * N / 100.0) in floating
// point), anything else is ParseSize.
func ParseRelSize(v any, avail int64) (int64, error) {
	if s, ok := v.(string); ok && strings.HasSuffix(s, "%") {
		p, err := strconv.ParseFloat(strings.TrimSpace(s[:len(s)-1]), 64)
		if err != nil {
			return 0, fmt.Errorf("could not convert string to float: '%s'", s[:len(s)-1])
		}
		return int64(float64(avail) * p / 100.0), nil
	}
	return ParseSize(v)
}

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
