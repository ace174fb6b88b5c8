package spec

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/dibuild/dib/spec/diag"
)

// DibVar is one of DIB's variables that a typed Dibfile key also sets: the
// key and the variable are one setting (docs/dibfile.md, "DIB's variables
// in env"). A variable given in env: means what it means to DIB; when its
// key is not written, the variable sets the key's field; when both are
// written they must say the same thing.
type DibVar struct {
	Key string // the Dibfile key ("release")
	Var string // DIB's variable ("DIB_RELEASE")
	// apply sets the image's field from the variable's value; an error
	// says why DIB's meaning cannot be taken from it.
	apply func(img *Image, v string) error
	// same reports whether the value says what the key already says.
	same func(img *Image, v string) bool
	// written reports whether the Dibfile wrote the key.
	written func(img *Image) bool
}

var dibVars = []DibVar{
	{Key: "release", Var: "DIB_RELEASE",
		apply:   func(img *Image, v string) error { img.Distro.Release = v; return nil },
		same:    func(img *Image, v string) bool { return img.Distro.Release == v },
		written: func(img *Image) bool { return img.Distro.Release != "" }},
	{Key: "mirror", Var: "DIB_DISTRIBUTION_MIRROR",
		apply:   func(img *Image, v string) error { img.Distro.Mirror = v; return nil },
		same:    func(img *Image, v string) bool { return img.Distro.Mirror == v },
		written: func(img *Image) bool { return img.Distro.Mirror != "" }},
	{Key: "checksum", Var: "DIB_CHECKSUM",
		apply:   func(img *Image, v string) error { img.Checksum = ParseDibChecksum(v); return nil },
		same:    func(img *Image, v string) bool { return slices.Equal(img.Checksum, ParseDibChecksum(v)) },
		written: func(img *Image) bool { return img.keys["checksum"] != "" }},
	{Key: "image-size", Var: "DIB_IMAGE_SIZE",
		apply: func(img *Image, v string) error {
			n, err := ParseDibImageSize(v)
			img.ImageSize = n
			return err
		},
		same: func(img *Image, v string) bool {
			n, err := ParseDibImageSize(v)
			return err == nil && n/1024 == img.ImageSize/1024
		},
		written: func(img *Image) bool { return img.keys["image-size"] != "" }},
	{Key: "block-device", Var: "DIB_BLOCK_DEVICE_CONFIG",
		// The compiler reads the config (YAML, or file://PATH).
		apply:   func(*Image, string) error { return nil },
		same:    func(*Image, string) bool { return false },
		written: func(img *Image) bool { return img.BlockDevice != nil }},
	{Key: "fs-type", Var: "FS_TYPE",
		apply: func(img *Image, v string) error {
			if !slices.Contains(fsTypes, v) {
				return fmt.Errorf("not a filesystem type dib makes (%s)", strings.Join(fsTypes, ", "))
			}
			img.FSType = v
			return nil
		},
		same:    func(img *Image, v string) bool { return img.FSType == v },
		written: func(img *Image) bool { return img.FSType != "" }},
	{Key: "root-label", Var: "ROOT_LABEL",
		apply:   func(img *Image, v string) error { img.RootLabel = v; return nil },
		same:    func(img *Image, v string) bool { return img.RootLabel == v },
		written: func(img *Image) bool { return img.RootLabel != "" }},
	{Key: "max-online-resize", Var: "MAX_ONLINE_RESIZE",
		apply: func(img *Image, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 {
				return fmt.Errorf("not a number of filesystem blocks")
			}
			img.MaxOnlineResize = n
			return nil
		},
		same:    func(img *Image, v string) bool { return strconv.FormatInt(img.MaxOnlineResize, 10) == v },
		written: func(img *Image) bool { return img.MaxOnlineResize != 0 }},
	{Key: "install-types", Var: "DIB_DEFAULT_INSTALLTYPE",
		apply: func(img *Image, v string) error {
			if v != "source" && v != "package" {
				return fmt.Errorf(`DIB knows "source" and "package"`)
			}
			img.InstallTypes.Default = v
			return nil
		},
		same:    func(img *Image, v string) bool { return img.InstallTypes.Default == v },
		written: func(img *Image) bool { return img.InstallTypes.Default != "" }},
	{Key: "offline", Var: "DIB_OFFLINE",
		// DIB's elements test [ -n "$DIB_OFFLINE" ]: any value is offline.
		apply:   func(img *Image, v string) error { img.Offline = v != ""; return nil },
		same:    func(img *Image, v string) bool { return img.Offline == (v != "") },
		written: func(img *Image) bool { return img.keys["offline"] != "" }},
	{Key: "image-cache", Var: "DIB_IMAGE_CACHE",
		apply:   func(img *Image, v string) error { img.ImageCache = v; return nil },
		same:    func(img *Image, v string) bool { return img.ImageCache == v },
		written: func(img *Image) bool { return img.ImageCache != "" }},
	{Key: "debug-trace", Var: "DIB_DEBUG_TRACE",
		apply: func(img *Image, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("not a trace level (0, 1, 2)")
			}
			img.DebugTrace = min(n, 2)
			return nil
		},
		same: func(img *Image, v string) bool {
			n, err := strconv.Atoi(v)
			return err == nil && min(max(n, 0), 2) == img.DebugTrace
		},
		written: func(img *Image) bool { return img.keys["debug-trace"] != "" }},
}

var fsTypes = []string{"ext2", "ext3", "ext4", "xfs", "btrfs", "vfat"}

// applyDibVars takes the meaning of DIB's variables given in env: a
// variable whose key is not written sets the key's field; a variable whose
// key is written must say the same thing, else it is an error at the
// variable. Empty values are unset, as DIB's ${VAR:-default} reads them.
func (d *decoder) applyDibVars(img *Image) {
	for _, ev := range img.Env {
		if ev.Secret || ev.Missing || ev.Value == "" {
			continue
		}
		for _, dv := range dibVars {
			if dv.Var != ev.Name {
				continue
			}
			if dv.written(img) {
				if !dv.same(img, ev.Value) {
					l, c := d.pos.Locate(img.keys[dv.Key])
					d.ds = append(d.ds, d.diagAt(ev, "%s=%q in env and %q at line %d, column %d say different things", ev.Name, ev.Value, dv.Key, l, c).
						WithHint("%q and %s are one setting: keep one (docs/dibfile.md, “DIB's variables in env”)", dv.Key, ev.Name))
				}
				continue
			}
			if err := dv.apply(img, ev.Value); err != nil {
				d.ds = append(d.ds, d.diagAt(ev, "%s=%q: %v", ev.Name, ev.Value, err))
			}
		}
	}
}

func (d *decoder) diagAt(ev EnvVar, format string, args ...any) diag.Diagnostic {
	return diag.Errorf(format, args...).At(d.path, ev.Line, ev.Col).WithSubject(ev.Name)
}

// ParseDibChecksum reads DIB_CHECKSUM as DIB's common-functions does: ""
// and "0" write no checksum, "1" means md5 and sha256, any other value
// writes the md5 file if it contains "md5" and the sha256 file if it
// contains "sha256".
func ParseDibChecksum(v string) []string {
	switch v {
	case "", "0":
		return nil
	case "1":
		return []string{"md5", "sha256"}
	}
	var out []string
	if strings.Contains(v, "md5") {
		out = append(out, "md5")
	}
	if strings.Contains(v, "sha256") {
		out = append(out, "sha256")
	}
	return out
}

// ParseDibImageSize reads DIB_IMAGE_SIZE as disk-image-create does: a
// number of GiB, turned into whole KiB (awk's %d truncates); the result is
// in bytes.
func ParseDibImageSize(v string) (int64, error) {
	g, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || g <= 0 || math.IsInf(g, 0) || math.IsNaN(g) || g > 1<<30 {
		return 0, fmt.Errorf("not a size in GiB (DIB reads a number, e.g. 4 or 2.5)")
	}
	return int64(g*1024*1024) * 1024, nil
}
