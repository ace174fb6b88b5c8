package layout

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Size kinds.
const (
	SizeText    = "text"    // a string: "550MiB", "1.75TB", "100%"
	SizeNumber  = "number"  // a YAML number: bytes
	SizeInvalid = "invalid" // any other value: DIB fails on it
)

// Size is a size as the configuration writes it, kept unparsed so that it
// is computed against the space it is relative to, failing where and as
// DIB fails.
type Size struct {
	// Spec is the value as written (Python's str of it).
	Spec string `json:"spec"`
	Kind string `json:"kind"` // one of the Size… constants
}

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

// Bytes is the absolute size in bytes ("4GiB", "1.75TB", "512", "10 MiB")
// exactly as DIB's parse_abs_size_spec: the number is a float, multiplied
// by the unit and truncated; an empty number means 1. A number is bytes.
func (s Size) Bytes() (int64, error) {
	switch s.Kind {
	case SizeNumber:
		if n, err := strconv.ParseInt(s.Spec, 10, 64); err == nil {
			return n, nil
		}
		f, err := strconv.ParseFloat(s.Spec, 64)
		if err != nil {
			return 0, fmt.Errorf("size %s is not a number", s.Spec)
		}
		return int64(f), nil
	case SizeText:
	default:
		return 0, fmt.Errorf("size must be a string like 4GiB, got %s", s.Spec)
	}
	m := sizeRe.FindStringSubmatch(s.Spec)
	if m == nil {
		return 0, fmt.Errorf("Invalid size unit spec [%s]", s.Spec)
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
		return 0, fmt.Errorf("size [%s] too large", s.Spec)
	}
	return int64(r), nil
}

// Of is the size in bytes where it may be relative: "N%" is N percent of
// avail (DIB's parse_rel_size_spec: int(avail * N / 100.0) in floating
// point), anything else is Bytes.
func (s Size) Of(avail int64) (int64, error) {
	if s.Kind == SizeText && strings.HasSuffix(s.Spec, "%") {
		p, err := strconv.ParseFloat(strings.TrimSpace(s.Spec[:len(s.Spec)-1]), 64)
		if err != nil {
			return 0, fmt.Errorf("could not convert string to float: '%s'", s.Spec[:len(s.Spec)-1])
		}
		return int64(float64(avail) * p / 100.0), nil
	}
	return s.Bytes()
}
