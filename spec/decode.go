package spec

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/dibuild/dib/compiler/plan/format"
	"github.com/dibuild/dib/spec/diag"
)

// source gives the value of each key of one image: its own, or the one
// from "defaults:" (never both, except the maps merged per entry).
type source struct {
	own, defaults       map[string]any
	ownPtr, defaultsPtr string
}

// get returns a key's value and the JSON pointer it was written at.
func (s source) get(key string) (any, string, bool) {
	if v, ok := s.own[key]; ok {
		return v, s.ownPtr + "/" + escapePointer(key), true
	}
	if v, ok := s.defaults[key]; ok {
		return v, s.defaultsPtr + "/" + escapePointer(key), true
	}
	return nil, "", false
}

// decoder turns a schema-valid document into typed images. It still
// checks every type assertion: a value the schema let through in an
// unexpected shape is skipped, never a panic.
type decoder struct {
	path      string
	pos       *positions
	lookupEnv func(string) (string, bool)
	ds        diag.Diagnostics
}

func (d *decoder) errorAt(pointer string, key bool, format string, args ...any) *diag.Diagnostic {
	line, col := d.pos.Locate(pointer)
	if key {
		line, col = d.pos.LocateKey(pointer)
	}
	d.ds = append(d.ds, diag.Errorf(format, args...).At(d.path, line, col).WithPath(pointer))
	return &d.ds[len(d.ds)-1]
}

func decode(path string, doc map[string]any, pos *positions, lookupEnv func(string) (string, bool)) (*File, diag.Diagnostics) {
	d := &decoder{path: path, pos: pos, lookupEnv: lookupEnv}
	f := &File{Path: path, pos: pos}
	if list, ok := doc["images"].([]any); ok {
		defaults, _ := doc["defaults"].(map[string]any)
		names := map[string]string{}
		if len(list) > MaxImages {
			d.errorAt("/images/"+strconv.Itoa(MaxImages), false, "more than %d images in one Dibfile", MaxImages).
				Hint = "each image is compiled (and its elements' environment.d files run) on every dib plan; split the file"
			return f, d.ds
		}
		for i, item := range list {
			own, _ := item.(map[string]any)
			ptr := "/images/" + strconv.Itoa(i)
			img := d.image(source{own: own, defaults: defaults, ownPtr: ptr, defaultsPtr: "/defaults"}, ptr)
			if first, dup := names[img.Name]; dup {
				d.errorAt(img.keys["name"], false, "image name %q is used twice", img.Name).
					Hint = fmt.Sprintf("the first image with this name is at %s; outputs would overwrite each other", first)
			} else {
				l, c := pos.Locate(img.keys["name"])
				names[img.Name] = fmt.Sprintf("line %d column %d", l, c)
			}
			f.Images = append(f.Images, img)
		}
	} else {
		f.Images = []*Image{d.image(source{own: doc}, "")}
	}
	return f, d.ds
}

func (d *decoder) image(src source, pointer string) *Image {
	img := &Image{Pointer: pointer, keys: map[string]string{}}
	get := func(key string) (any, string, bool) {
		v, p, ok := src.get(key)
		if ok {
			img.keys[key] = p
		}
		return v, p, ok
	}
	str := func(key string) string {
		v, _, _ := get(key)
		s, _ := v.(string)
		return s
	}
	boolean := func(key string) (bool, bool) {
		v, _, ok := get(key)
		b, _ := v.(bool)
		return b, ok
	}
	integer := func(key string) (int64, bool) {
		v, _, ok := get(key)
		n, isInt := toInt(v)
		return n, ok && isInt
	}

	img.Name = str("name")
	d.distro(img, get)
	img.Arch = str("arch")
	img.Elements = strings1(get("elements"))
	img.ElementsPath = strings1(get("elements-path"))
	img.Env = d.env(src, img)
	img.InstallTypes = installTypes(src, img)
	img.Packages = strings1(get("packages"))
	if v, p, ok := get("block-device"); ok {
		switch b := v.(type) {
		case string:
			img.BlockDevice = &BlockDevice{Preset: b, Pointer: p}
		case []any:
			img.BlockDevice = &BlockDevice{Config: b, Pointer: p}
		}
	}
	if v, p, ok := get("image-size"); ok {
		n, err := ParseSize(v)
		if err != nil {
			d.errorAt(p, false, "invalid image-size: %v", err)
		}
		img.ImageSize = n
	}
	img.RootLabel = str("root-label")
	img.FSType = str("fs-type")
	img.MkfsOptions = str("mkfs-options")
	img.MaxOnlineResize, _ = integer("max-online-resize")
	d.outputs(img, get)
	if v, _, ok := get("checksum"); ok {
		switch c := v.(type) {
		case bool:
			if c {
				img.Checksum = []string{"md5", "sha256"}
			}
		case []any:
			for _, want := range []string{"md5", "sha256"} {
				for _, e := range c {
					if e == want {
						img.Checksum = append(img.Checksum, want)
						break
					}
				}
			}
		}
	}
	img.Ramdisk, _ = boolean("ramdisk")
	img.RamdiskElement = str("ramdisk-element")
	img.SkipBase, _ = boolean("skip-base")
	img.Offline, _ = boolean("offline")
	if t, ok := boolean("tmpfs"); ok {
		img.Tmpfs = t
	} else {
		img.Tmpfs = true
	}
	img.MinTmpfs, _ = integer("min-tmpfs")
	img.ImageCache = str("image-cache")
	if n, ok := integer("debug-trace"); ok {
		img.DebugTrace = int(n)
	}
	img.Logfile = str("logfile")
	if n, ok := integer("source-date-epoch"); ok {
		img.SourceDateEpoch = &n
	}
	if v, p, ok := get("cache"); ok {
		if m, isMap := v.(map[string]any); isMap {
			if a, isStr := m["max-age"].(string); isStr {
				age, err := ParseAge(a)
				if err != nil {
					d.errorAt(p+"/max-age", false, "invalid cache.max-age: %v", err)
				}
				img.CacheMaxAge = age
			}
			if r, isStr := m["registry"].(string); isStr {
				img.CacheRegistry = r
			}
		}
	}
	d.applyDibVars(img)
	ApplyDefaults(img)
	d.check(img)
	return img
}

// distro applies the short form through NormalizeDistro, reporting a
// release or mirror written twice at the top-level key.
func (d *decoder) distro(img *Image, get func(string) (any, string, bool)) {
	dv, dp, _ := get("distro")
	release, rp, _ := get("release")
	mirror, mp, _ := get("mirror")
	rs, _ := release.(string)
	ms, _ := mirror.(string)
	dist, conflicts := NormalizeDistro(dv, rs, ms)
	img.Distro = dist
	// distro's own release and mirror are where the values come from.
	if x, ok := dv.(map[string]any); ok {
		for _, key := range []string{"release", "mirror"} {
			if _, set := x[key]; set {
				img.keys[key] = dp + "/" + key
			}
		}
	}
	for _, key := range conflicts {
		p := rp
		if key == "mirror" {
			p = mp
		}
		l, c := d.pos.LocateKey(dp + "/" + key)
		d.errorAt(p, true, "%s is set twice: here and in distro", key).
			Hint = fmt.Sprintf("keep one: %q here or distro.%s at line %d, column %d", key, key, l, c)
	}
}

// NormalizeDistro combines the two ways of writing the distribution: the
// "distro" value (an element name, or the short form {name, release,
// mirror}, as decoded from YAML) and the top-level "release" and "mirror"
// ("" when absent). It returns the keys set in both places ("release",
// "mirror"); the value inside "distro" wins for them.
func NormalizeDistro(distro any, release, mirror string) (Distro, []string) {
	var d Distro
	var conflicts []string
	switch x := distro.(type) {
	case string:
		d.Element = x
	case map[string]any:
		d.Element, _ = x["name"].(string)
		d.Release, _ = x["release"].(string)
		d.Mirror, _ = x["mirror"].(string)
	}
	if release != "" {
		if d.Release != "" {
			conflicts = append(conflicts, "release")
		} else {
			d.Release = release
		}
	}
	if mirror != "" {
		if d.Mirror != "" {
			conflicts = append(conflicts, "mirror")
		} else {
			d.Mirror = mirror
		}
	}
	return d, conflicts
}

// env decodes "env": the defaults' variables, replaced per name by the
// image's own, sorted by name.
func (d *decoder) env(src source, img *Image) []EnvVar {
	vars := map[string]EnvVar{}
	for _, layer := range []struct {
		m   map[string]any
		ptr string
	}{{src.defaults, src.defaultsPtr}, {src.own, src.ownPtr}} {
		m, _ := layer.m["env"].(map[string]any)
		if m == nil {
			continue
		}
		img.keys["env"] = layer.ptr + "/env"
		for name, v := range m {
			p := layer.ptr + "/env/" + escapePointer(name)
			line, col := d.pos.LocateKey(p)
			ev := EnvVar{Name: name, Line: line, Col: col}
			switch x := v.(type) {
			case string:
				ev.Value = x
			case int64, uint64:
				ev.Value = fmt.Sprint(x)
			case map[string]any:
				ev.Secret, _ = x["secret"].(bool)
				if val, ok := x["value"].(string); ok {
					ev.Value = val
				}
				if from, ok := x["from-env"].(string); ok {
					ev.FromEnv = from
					if d.lookupEnv == nil {
						ev.Missing = true
					} else if val, found := d.lookupEnv(from); found {
						ev.Value = val
					} else {
						ev.Missing = true
					}
				}
			}
			if IsSecretName(name) {
				ev.Secret = true
			}
			vars[name] = ev
		}
	}
	out := make([]EnvVar, 0, len(vars))
	for _, v := range vars {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if len(out) == 0 {
		return nil
	}
	return out
}

// IsSecretName reports whether a variable is secret by its name alone:
// DIB's password variables (DIB_DEV_USER_PASSWORD, DIB_PASSWORD...).
func IsSecretName(name string) bool {
	return strings.Contains(strings.ToUpper(name), "PASSWORD")
}

func installTypes(src source, img *Image) InstallTypes {
	var it InstallTypes
	over := map[string]string{}
	for _, layer := range []struct {
		m   map[string]any
		ptr string
	}{{src.defaults, src.defaultsPtr}, {src.own, src.ownPtr}} {
		m, _ := layer.m["install-types"].(map[string]any)
		if m == nil {
			continue
		}
		img.keys["install-types"] = layer.ptr + "/install-types"
		if def, ok := m["default"].(string); ok {
			it.Default = def
		}
		o, _ := m["overrides"].(map[string]any)
		for k, v := range o {
			if s, ok := v.(string); ok {
				over[k] = s
			}
		}
	}
	for k, v := range over {
		it.Overrides = append(it.Overrides, InstallTypeOverride{Prefix: k, Type: v})
	}
	sort.Slice(it.Overrides, func(i, j int) bool { return it.Overrides[i].Prefix < it.Overrides[j].Prefix })
	return it
}

func (d *decoder) outputs(img *Image, get func(string) (any, string, bool)) {
	v, p, ok := get("outputs")
	if !ok {
		return
	}
	list, _ := v.([]any)
	for i, item := range list {
		o := Output{Pointer: p + "/" + strconv.Itoa(i)}
		switch x := item.(type) {
		case string:
			o.Format = x
			o.Compress = x == "qcow2"
		case map[string]any:
			o.Format, _ = x["format"].(string)
			o.Compress = o.Format == "qcow2"
			if c, ok := x["compress"].(bool); ok {
				o.Compress = c
			}
			o.Target, _ = x["target"].(string)
			o.Subformat, _ = x["subformat"].(string)
			if opts, ok := x["qemu-img-options"].(map[string]any); ok {
				for k, v := range opts {
					o.QemuImgOptions = append(o.QemuImgOptions, KeyValue{Key: k, Value: fmt.Sprint(v)})
				}
				sort.Slice(o.QemuImgOptions, func(i, j int) bool { return o.QemuImgOptions[i].Key < o.QemuImgOptions[j].Key })
			}
			d.outputOptions(o, x)
		}
		img.Outputs = append(img.Outputs, o)
	}
}

// outputOptions rejects options that mean nothing for the output's format
// (DIB would silently ignore them); the format table says which apply.
func (d *decoder) outputOptions(o Output, x map[string]any) {
	f, known := format.Lookup(o.Format)
	if !known {
		return // the schema reports the format
	}
	for _, k := range []string{format.OptCompress, format.OptQemuImgOptions, format.OptSubformat, format.OptTarget} {
		if _, set := x[k]; set && !f.Takes(k) {
			d.errorAt(o.Pointer+"/"+k, true, "%q does not apply to %s outputs", k, o.Format)
		}
	}
}

// check reports what the schema cannot express about one image.
func (d *decoder) check(img *Image) {
	d.hostileChecks(img)
	seen := map[string]int{}
	for i, o := range img.Outputs {
		if j, dup := seen[o.Format]; dup {
			d.errorAt(o.Pointer, false, "output %q is listed twice", o.Format).
				Hint = fmt.Sprintf("it is already outputs[%d]; each format is written once, as %s", j, img.Name+"."+FileExtension(o.Format))
			continue
		}
		seen[o.Format] = i
	}
}

// FileExtension is the extension of an output format's file (the
// format table's; the name itself for a format it does not know).
func FileExtension(name string) string {
	if f, ok := format.Lookup(name); ok {
		return f.Ext
	}
	return name
}

func strings1(v any, _ string, _ bool) []string {
	list, _ := v.([]any)
	var out []string
	for _, e := range list {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func toInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case uint64:
		if n > math.MaxInt64 {
			return 0, false
		}
		return int64(n), true
	case float64:
		if n == math.Trunc(n) && math.Abs(n) < 1<<53 {
			return int64(n), true
		}
	}
	return 0, false
}

var sizeRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?) *(B|K|KB|KiB|M|MB|MiB|G|GB|GiB|T|TB|TiB)$`)

// ParseSize converts an image-size value to bytes. A number is GiB, as
// DIB's --image-size (disk-image-create multiplies it by 1024*1024 into
// KiB, truncating); a string carries a unit from DIB's block-device table:
// K, M, G, T and KB, MB, GB, TB are powers of 1000, KiB, MiB, GiB, TiB of
// 1024.
func ParseSize(v any) (int64, error) {
	const limit = float64(1 << 62)
	switch x := v.(type) {
	case string:
		m := sizeRE.FindStringSubmatch(x)
		if m == nil {
			return 0, fmt.Errorf("%q is not a size like 4GiB or 5G", x)
		}
		n, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return 0, err
		}
		unit := map[string]float64{
			"B": 1, "K": 1e3, "KB": 1e3, "M": 1e6, "MB": 1e6, "G": 1e9, "GB": 1e9, "T": 1e12, "TB": 1e12,
			"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
		}[m[2]]
		b := n * unit
		if b <= 0 || b > limit {
			return 0, fmt.Errorf("%q is out of range", x)
		}
		return int64(b), nil
	default:
		f, ok := number(v)
		if !ok {
			return 0, fmt.Errorf("not a size")
		}
		kib := math.Trunc(f * 1024 * 1024)
		if kib <= 0 || kib*1024 > limit {
			return 0, fmt.Errorf("%v GiB is out of range", f)
		}
		return int64(kib) * 1024, nil
	}
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}
