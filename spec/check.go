package spec

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode"

	"github.com/dibuild/dib/compiler/plan/format"
	"github.com/dibuild/dib/spec/diag"
)

// The checks below reject, at load time, values that the schema lets
// through but the build would fail on minutes later, or would use
// differently than the plan shows: names that become file names, URLs,
// docker references, qemu-img options, labels and reserved variables.

// MaxImageNameBytes bounds an image name: it becomes file names such as
// NAME.qcow2.sha256 and .NAME.qcow2.dibtmp-XXXXXXXX, which must stay under
// the 255 bytes a file name may have.
const MaxImageNameBytes = 200

// MaxImages bounds the images of one Dibfile: compiling one costs about
// 0.1 s of CPU (its elements' environment.d files run), so a 40 KB file
// of a thousand images would keep dib plan busy for minutes.
const MaxImages = 64

// MaxImageSize bounds image-size and every local_loop size: 16 TiB is the
// largest file ext4 can hold, and far beyond any disk image.
const MaxImageSize = int64(16) << 40

// reservedEnv are variables dib itself sets for every hook: a value in
// env: would show in the plan and dib_environment but the build would use
// dib's. The value is the reason, with the Dibfile key to use instead.
var reservedEnv = map[string]string{
	"TARGET_ROOT":                  "dib sets it to the image's root directory",
	"TMP_MOUNT_PATH":               "dib sets it to the image's root directory",
	"TMP_BUILD_DIR":                "dib sets it to its build directory",
	"TMP_HOOKS_PATH":               "dib sets it to the merged hook tree",
	"TMP_IMAGE_DIR":                "dib sets it to its image directory",
	"TMP_IMAGE_PATH":               "dib sets it to the disk image it writes",
	"IMAGE_NAME":                   "dib sets it from name: (set name: instead)",
	"IMAGE_ELEMENT":                "dib sets it to the expanded element list",
	"IMAGE_ELEMENT_YAML":           "dib sets it to the expanded element list",
	"DIB_BLOCK_DEVICE_PARAMS_YAML": "dib sets it to its block-device parameters file",
	"ARCH":                         "dib sets it from arch: (set arch: instead)",
	"ELEMENTS_PATH":                "dib sets it from elements-path: (set elements-path: instead)",
	"PATH":                         "dib sets the search path of every hook",
	"HOME":                         "dib sets it for every hook",
	"_LIB":                         "dib sets it to its hook library",
}

// ReservedEnv reports why a variable cannot be set in env:, or "".
func ReservedEnv(name string) string { return reservedEnv[name] }

// releasePattern: a release becomes a directory name (the apt and dnf
// caches) and a path component of mirror URLs.
var releasePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+~-]*$`)

// maxReleaseBytes bounds a release (a directory name and a URL component).
const maxReleaseBytes = 64

// validRelease: releasePattern, without "..", at most maxReleaseBytes.
func validRelease(r string) bool {
	return releasePattern.MatchString(r) && !strings.Contains(r, "..") && len(r) <= maxReleaseBytes
}

// maxDockerTargetBytes is the longest docker reference dib accepts.
const maxDockerTargetBytes = 255

// maxPackageBytes is the longest package name dib accepts.
const maxPackageBytes = 255

// Docker references (distribution/reference): [domain[:port]/]path[:tag].
var dockerRef = regexp.MustCompile(`^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$`)

// dockerPath is the repository path and tag, without a registry.
var dockerPath = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$`)

// validDockerTarget: as docker, the first component is a registry only
// when it has a '.' or a ':' or is localhost; the repository is lowercase.
func validDockerTarget(t string) bool {
	if len(t) > maxDockerTargetBytes || !dockerRef.MatchString(t) {
		return false
	}
	first, rest, found := strings.Cut(t, "/")
	if found && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return dockerPath.MatchString(rest)
	}
	return dockerPath.MatchString(t)
}

// labelMax is the longest filesystem label mkfs accepts, in bytes.
var labelMax = map[string]int{"ext2": 16, "ext3": 16, "ext4": 16, "xfs": 12, "vfat": 11, "btrfs": 255}

// firstControl reports the first character of s that a terminal would
// interpret rather than show (C0 and C1 controls, DEL, bidirectional
// overrides), and its byte offset; ok is true when there is none.
// Newlines and tabs count as controls: callers allowing them check first.
func firstControl(s string) (r rune, at int, ok bool) {
	for i, c := range s {
		if IsControl(c) {
			return c, i, false
		}
	}
	return 0, 0, true
}

// IsControl reports whether a terminal would act on r instead of showing
// it (diag.IsControl).
func IsControl(r rune) bool { return diag.IsControl(r) }

// controlName renders a control character for a message: U+001B.
func controlName(r rune) string { return fmt.Sprintf("U+%04X", r) }

// hostileChecks reports, for one image, the values the build could not
// use as the plan shows them.
func (d *decoder) hostileChecks(img *Image) {
	key := func(k string) string { return img.keys[k] }
	noControl := func(k, what, v string) bool {
		if r, _, ok := firstControl(v); !ok {
			d.errorAt(key(k), false, "%s contains the control character %s", what, controlName(r)).
				Hint = "control characters cannot appear in " + what
			return false
		}
		return true
	}
	if p := key("name"); p != "" && len(img.Name) > MaxImageNameBytes {
		d.errorAt(p, false, "image name is %d bytes long, more than %d", len(img.Name), MaxImageNameBytes).
			Hint = "it becomes file names (NAME.qcow2.sha256, NAME.d/…) limited to 255 bytes"
	}
	fromEnv := func(name, value string) bool {
		for _, ev := range img.Env {
			if ev.Name == name && ev.Value == value {
				return true
			}
		}
		return false
	}
	// A release or mirror that comes from env is checked at its env entry.
	if p := key("release"); p != "" || (img.Distro.Release != "" && !fromEnv("DIB_RELEASE", img.Distro.Release)) {
		r := img.Distro.Release
		if p == "" {
			p = key("distro")
		}
		if r != "" && !validRelease(r) {
			d.errorAt(p, false, "invalid release %q", r).
				Hint = "a release is one name such as bookworm, noble or 9-stream: letters, digits, '.', '_', '+', '~' and '-', without '/' or '..', at most 64 bytes"
		}
	}
	if m := img.Distro.Mirror; m != "" && (key("mirror") != "" || !fromEnv("DIB_DISTRIBUTION_MIRROR", m)) {
		p := key("mirror")
		if p == "" {
			p = key("distro")
		}
		if err := checkMirror(m); err != "" {
			d.errorAt(p, false, "invalid mirror %q: %s", m, err).
				Hint = "a mirror is a URL such as http://deb.debian.org/debian (http, https, ftp or file)"
		}
	}
	if img.RootLabel != "" && noControl("root-label", "a filesystem label", img.RootLabel) {
		fs := img.FSType
		if fs == "" {
			fs = "ext4"
		}
		if strings.ContainsAny(img.RootLabel, " \t") {
			d.errorAt(key("root-label"), false, "root-label %q contains a space", img.RootLabel).
				Hint = "it is written to /etc/fstab as LABEL=…, where a space ends the field"
		} else if max, ok := labelMax[fs]; ok && len(img.RootLabel) > max {
			d.errorAt(key("root-label"), false, "root-label %q is %d bytes long; %s labels have at most %d", img.RootLabel, len(img.RootLabel), fs, max).
				Hint = "shorten it, or choose another fs-type"
		}
	}
	if img.MkfsOptions != "" {
		noControl("mkfs-options", "mkfs-options", img.MkfsOptions)
	}
	if p := key("image-size"); p != "" && img.ImageSize > MaxImageSize {
		d.errorAt(p, false, "image-size %d bytes is larger than 16 TiB", img.ImageSize).
			Hint = "16 TiB is the largest file ext4 can hold; a disk image is a few GiB"
	}
	if p := key("packages"); p != "" {
		for i, name := range img.Packages {
			if why := CheckPackageName(name); why != "" {
				d.errorAt(fmt.Sprintf("%s/%d", p, i), false, "invalid package name %q: %s", name, why).
					Hint = "a package name is letters, digits and '.', '+', '-', '_' (Debian: lowercase, at least 2 characters), optionally :ARCH or =VERSION"
			}
		}
	}
	for _, ev := range img.Env {
		switch {
		case ev.Name == "DIB_RELEASE" && ev.Value != "" && !validRelease(ev.Value):
			d.ds = append(d.ds, errAtPos(d.path, ev.Line, ev.Col, "", "invalid release %q in DIB_RELEASE", ev.Value).
				WithHint("a release is one name such as bookworm, noble or 9-stream: letters, digits, '.', '_', '+', '~' and '-', without '/' or '..', at most 64 bytes"))
		case ev.Name == "DIB_DISTRIBUTION_MIRROR" && ev.Value != "":
			if why := checkMirror(ev.Value); why != "" {
				d.ds = append(d.ds, errAtPos(d.path, ev.Line, ev.Col, "", "invalid mirror %q in DIB_DISTRIBUTION_MIRROR: %s", ev.Value, why))
			}
		}
		if why := ReservedEnv(ev.Name); why != "" {
			d.ds = append(d.ds, errAtPos(d.path, ev.Line, ev.Col, key("env")+"/"+escapePointer(ev.Name),
				"%s cannot be set in env: %s", ev.Name, why).
				WithHint("the plan and dib_environment would show this value while the build uses dib's; remove it"))
		}
		if r, _, ok := firstControl(strings.NewReplacer("\n", "", "\t", "").Replace(ev.Name)); !ok {
			d.ds = append(d.ds, errAtPos(d.path, ev.Line, ev.Col, "", "variable name contains the control character %s", controlName(r)))
		}
	}
	for _, o := range img.Outputs {
		if o.Subformat != "" {
			if allowed := outputFormat(o.Format).Subformats; len(allowed) > 0 && !contains(allowed, o.Subformat) {
				d.errorAt(o.Pointer+"/subformat", false, "%s has no subformat %q", o.Format, o.Subformat).
					Hint = fmt.Sprintf("qemu-img knows %s", strings.Join(allowed, ", "))
			}
		}
		if o.Target != "" && !validDockerTarget(o.Target) {
			d.errorAt(o.Pointer+"/target", false, "invalid docker target %q", o.Target).
				Hint = "a docker target is [REGISTRY/]REPOSITORY[:TAG] with a lowercase repository, e.g. example.com/team/image:1.0"
		}
		for _, kv := range o.QemuImgOptions {
			ptr := o.Pointer + "/qemu-img-options/" + escapePointer(kv.Key)
			if allowed := outputFormat(o.Format).QemuImgOptions; len(allowed) > 0 && !contains(allowed, kv.Key) {
				d.errorAt(ptr, true, "qemu-img has no %s option %q", o.Format, kv.Key).
					Hint = fmt.Sprintf("%s options: %s", o.Format, strings.Join(allowed, ", "))
				continue
			}
			if kv.Value == "" || strings.ContainsAny(kv.Value, ", \t\n") || !printable(kv.Value) {
				d.errorAt(ptr, false, "invalid value %q for qemu-img option %s", kv.Value, kv.Key).
					Hint = "qemu-img -o separates options with commas: a value has no comma, space or control character"
			}
		}
	}
}

func printable(s string) bool {
	_, _, ok := firstControl(s)
	return ok
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func errAtPos(file string, line, col int, pointer, format string, args ...any) diag.Diagnostic {
	return diag.Errorf(format, args...).At(file, line, col).WithPath(pointer)
}

// checkMirror returns why m is not a usable mirror URL, or "".
func checkMirror(m string) string {
	for _, c := range m {
		if IsControl(c) || unicode.IsSpace(c) {
			return "it contains a space or a control character"
		}
		if strings.ContainsRune("`$;|&<>'\"\\", c) {
			return fmt.Sprintf("it contains %q, which no mirror URL needs and a shell would act on", c)
		}
	}
	u, err := url.Parse(m)
	if err != nil {
		return "not a URL"
	}
	switch u.Scheme {
	case "http", "https", "ftp":
		if u.Hostname() == "" {
			return "no host"
		}
	case "file":
		if u.Path == "" || !strings.HasPrefix(u.Path, "/") {
			return "a file: URL needs an absolute path"
		}
	case "":
		return "no scheme (http://, https://, ftp:// or file://)"
	default:
		return fmt.Sprintf("scheme %q is not http, https, ftp or file", u.Scheme)
	}
	if u.User != nil {
		return "user information in the URL would be written to the image's sources.list"
	}
	return ""
}

// debPackage is Debian policy 5.6.7 (lowercase letters, digits, '+',
// '-', '.'; at least two characters, starting with a letter or digit),
// with an optional :ARCH qualifier or =VERSION.
var debPackage = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?(=[A-Za-z0-9.+~:-]+)?$`)

// rpmPackage: RPM names (letters, digits, '.', '_', '+', '-'), or a
// capability such as perl(Data::Dumper).
var rpmPackage = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._+-]*(\([A-Za-z0-9._:+-]+\))?$`)

// CheckPackageName returns why name cannot be a package name of any
// distribution dib builds, or "". The compiler checks it again against
// the rules of the image's distribution family.
func CheckPackageName(name string) string {
	switch {
	case name == "":
		return "it is empty"
	case strings.HasPrefix(name, "-"):
		return "it starts with '-' and would be read as an option of the package manager"
	case len(name) > maxPackageBytes:
		return fmt.Sprintf("it is longer than %d bytes", maxPackageBytes)
	case !debPackage.MatchString(name) && !rpmPackage.MatchString(name):
		return "it contains characters no package name has"
	}
	return ""
}

// CheckPackageNameFor is CheckPackageName with the rules of one
// distribution family ("debian" or "redhat"; others get the generic rule).
func CheckPackageNameFor(family, name string) string {
	if why := CheckPackageName(name); why != "" {
		return why
	}
	switch family {
	case "debian":
		if !debPackage.MatchString(name) {
			return "Debian package names are lowercase letters, digits, '+', '-' and '.', at least 2 characters"
		}
	case "redhat":
		if !rpmPackage.MatchString(name) {
			return "RPM package names are letters, digits, '.', '_', '+' and '-'"
		}
	}
	return ""
}

// outputFormat is the format table's entry for name (zero when unknown).
func outputFormat(name string) format.Format {
	f, _ := format.Lookup(name)
	return f
}
