package dibyaml

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/dibuild/dib/compiler/plan/format"
	"github.com/dibuild/dib/schema"
	"github.com/dibuild/dib/spec"
	"github.com/dibuild/dib/spec/diag"
)

// converter maps merged entries to Dibfile keys and writes them.
type converter struct {
	path string
	doc  *spec.Document
	ds   diag.Diagnostics
	// flagOf names the command-line flag of each DIB YAML key when the
	// input is a command line (doc is nil).
	flagOf map[string]string
}

// dibYAMLKey maps the top-level Dibfile keys to the DIB YAML key (and so
// the flag) they came from, where the names differ.
var dibYAMLKey = map[string]string{
	"name": "imagename", "outputs": "types", "env": "environment",
	"install-types": "install-type", "tmpfs": "no-tmpfs",
}

// warn reports a conversion that changes or drops something, at the key
// that asked for it.
func (c *converter) warn(e *entry, key, format string, args ...any) {
	if c.doc == nil { // a command line: the message names the flag
		c.ds = append(c.ds, diag.Warningf(format, args...).At(c.path, 0, 0))
		return
	}
	line, col := c.doc.LocateKey(e.where[key])
	c.ds = append(c.ds, diag.Warningf(format, args...).At(c.path, line, col).WithPath(e.where[key]))
}

// field is one key of the Dibfile, in output order.
type field struct {
	key   string
	value any // string, bool, int64/uint64, []any, []field (mapping)
}

func (c *converter) render(images []*entry) []byte {
	return c.renderWith(fmt.Sprintf("# Converted by `dib convert` from %s.\n", c.path), images)
}

// renderWith writes the Dibfile of images after the schema modeline and
// header, a comment of whole lines.
func (c *converter) renderWith(header string, images []*entry) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# yaml-language-server: $schema=%s\n", schema.ModelinePath)
	b.WriteString(header)
	if len(images) == 1 {
		writeFields(&b, c.image(images[0]), 0)
		return []byte(b.String())
	}
	b.WriteString("images:\n")
	for _, e := range images {
		fields := c.image(e)
		for i, f := range fields {
			prefix := "    "
			if i == 0 {
				prefix = "  - "
			}
			writeField(&b, f, 4, prefix)
		}
	}
	return []byte(b.String())
}

// image maps one merged entry, key by key (dib-yaml-command.md).
func (c *converter) image(e *entry) []field {
	v := e.values
	var fs []field
	add := func(key string, val any) { fs = append(fs, field{key, val}) }
	str := func(k string) (string, bool) { s, ok := v[k].(string); return s, ok && s != "" }
	flag := func(k string) bool { b, _ := v[k].(bool); return b }

	add("name", e.name)
	if s, ok := str("arch"); ok {
		add("arch", s)
	}
	if els := unique(v["elements"]); len(els) > 0 {
		add("elements", els)
	}
	if dirs := anyList(v["elements-path"]); len(dirs) > 0 {
		add("elements-path", dirs)
	}
	env := envFields(v["environment"])
	for _, broken := range []struct{ key, variable, flag string }{
		{"image-extra-size", "DIB_IMAGE_EXTRA_SIZE", "--image-extra-size"},
		{"mkfs-journal-size", "DIB_JOURNAL_SIZE", "--mkfs-journal-size"},
	} {
		n, ok := v[broken.key]
		if !ok {
			continue
		}
		val := fmt.Sprint(n)
		env = setField(env, broken.variable, val)
		c.warn(e, broken.key, "%s is broken in diskimage-builder (%s is missing from disk-image-create's getopt list, so the build stops with \"unrecognized option\"); converted to env %s: %q, the variable the flag was meant to set",
			broken.key, broken.flag, broken.variable, val)
	}
	if len(env) > 0 {
		add("env", env)
	}
	if s, ok := str("install-type"); ok {
		add("install-types", []field{{"default", s}})
	}
	if pk := anyList(v["packages"]); len(pk) > 0 {
		add("packages", pk)
	}
	if n, ok := v["image-size"]; ok {
		add("image-size", n)
	}
	if s, ok := str("root-label"); ok {
		add("root-label", s)
	}
	if s, ok := str("fs-type"); ok {
		add("fs-type", s)
	}
	if s, ok := str("mkfs-options"); ok {
		add("mkfs-options", s)
	}
	if n, ok := v["max-online-resize"]; ok {
		add("max-online-resize", n)
	}
	if outs := c.outputs(e); len(outs) > 0 {
		add("outputs", outs)
	}
	if flag("checksum") {
		add("checksum", true)
	}
	if flag("ramdisk") {
		add("ramdisk", true)
	}
	if s, ok := str("ramdisk-element"); ok {
		add("ramdisk-element", s)
	}
	if flag("skip-base") {
		add("skip-base", true)
	}
	if flag("offline") {
		add("offline", true)
	}
	if flag("no-tmpfs") {
		add("tmpfs", false)
	}
	if n, ok := v["min-tmpfs"]; ok {
		add("min-tmpfs", n)
	}
	if s, ok := str("image-cache"); ok {
		add("image-cache", s)
	}
	if n, ok := v["debug-trace"]; ok && fmt.Sprint(n) != "0" {
		add("debug-trace", n)
	}
	if s, ok := str("logfile"); ok {
		add("logfile", s)
	}
	if flag("clear") {
		c.warn(e, "clear", "clear (-c, CLEAR_ENV) has no Dibfile equivalent and was dropped")
	}
	return fs
}

// outputs maps types, uncompressed, qemu-img-options and docker-target.
// DIB's default type is qcow2; it is written out when an option needs it.
func (c *converter) outputs(e *entry) []any {
	v := e.values
	types := unique(v["types"])
	uncompressed, _ := v["uncompressed"].(bool)
	qopts := mapping(v["qemu-img-options"])
	target, _ := v["docker-target"].(string)
	if len(types) == 0 && (uncompressed || len(qopts) > 0) {
		types = []any{"qcow2"}
	}
	var outs []any
	usedOpts, usedTarget := false, false
	for _, t := range types {
		name, _ := t.(string)
		f, _ := format.Lookup(name)
		var fs []field
		if f.Takes(format.OptCompress) && uncompressed {
			fs = append(fs, field{"compress", false})
		}
		if len(qopts) > 0 && f.Takes(format.OptQemuImgOptions) {
			fs = append(fs, field{"qemu-img-options", qopts})
			usedOpts = true
		}
		if f.Takes(format.OptTarget) && target != "" {
			fs = append(fs, field{"target", target})
			usedTarget = true
		}
		if len(fs) == 0 {
			outs = append(outs, name)
			continue
		}
		outs = append(outs, append([]field{{"format", name}}, fs...))
	}
	if len(qopts) > 0 && !usedOpts {
		c.warn(e, "qemu-img-options", "qemu-img-options dropped: no output of this image is written by qemu-img")
	}
	if target != "" && !usedTarget {
		c.warn(e, "docker-target", "docker-target dropped: this image has no docker output")
	}
	return outs
}

// unique keeps the first occurrence of each list item: merged entries may
// repeat elements or types, which DIB deduplicates or writes twice.
func unique(v any) []any {
	var out []any
	seen := map[string]bool{}
	for _, x := range anyList(v) {
		k := fmt.Sprint(x)
		if !seen[k] {
			seen[k] = true
			out = append(out, x)
		}
	}
	return out
}

func anyList(v any) []any { l, _ := v.([]any); return l }

// mapping turns a map into fields sorted by key.
func mapping(v any) []field {
	m, _ := v.(map[string]any)
	keys := slices.Sorted(maps.Keys(m))
	fs := make([]field, len(keys))
	for i, k := range keys {
		fs[i] = field{k, m[k]}
	}
	return fs
}

// envFields maps the environment to env entries sorted by name. A
// variable whose name says it holds a secret is not written: the Dibfile
// reads it from dib's environment at build time and never prints it.
func envFields(v any) []field {
	fs := mapping(v)
	for i, f := range fs {
		if isSecretName(f.key) {
			fs[i].value = []field{{"secret", true}, {"from-env", f.key}}
		}
	}
	return fs
}

// isSecretName reports names of passwords, tokens and secrets.
func isSecretName(name string) bool {
	n := strings.ToUpper(name)
	for _, w := range []string{"PASSWORD", "SECRET", "TOKEN", "PASSWD"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// setField sets a key of sorted fields, keeping them sorted.
func setField(fs []field, key string, val any) []field {
	for i := range fs {
		if fs[i].key == key {
			fs[i].value = val
			return fs
		}
	}
	fs = append(fs, field{key, val})
	sort.Slice(fs, func(i, j int) bool { return fs[i].key < fs[j].key })
	return fs
}

func writeFields(b *strings.Builder, fs []field, indent int) {
	for _, f := range fs {
		writeField(b, f, indent, strings.Repeat(" ", indent))
	}
}

// writeField writes "key: value" after prefix; mappings and lists of
// mappings go on the following lines, lists of scalars in flow style.
func writeField(b *strings.Builder, f field, indent int, prefix string) {
	b.WriteString(prefix)
	b.WriteString(scalar(f.key))
	b.WriteByte(':')
	switch v := f.value.(type) {
	case []field:
		b.WriteByte('\n')
		writeFields(b, v, indent+2)
	case []any:
		if scalars(v) {
			items := make([]string, len(v))
			for i, x := range v {
				items[i] = scalar(x)
			}
			fmt.Fprintf(b, " [%s]\n", strings.Join(items, ", "))
			return
		}
		b.WriteByte('\n')
		for _, x := range v {
			switch item := x.(type) {
			case []field:
				for i, f := range item {
					p := strings.Repeat(" ", indent+4)
					if i == 0 {
						p = strings.Repeat(" ", indent+2) + "- "
					}
					writeField(b, f, indent+4, p)
				}
			default:
				fmt.Fprintf(b, "%s- %s\n", strings.Repeat(" ", indent+2), scalar(item))
			}
		}
	default:
		b.WriteByte(' ')
		b.WriteString(scalar(v))
		b.WriteByte('\n')
	}
}

func scalars(l []any) bool {
	for _, x := range l {
		switch x.(type) {
		case []field, []any, map[string]any:
			return false
		}
	}
	return true
}

var plain = regexp.MustCompile(`^[A-Za-z_/.][A-Za-z0-9_./+-]*$`)

// scalar renders a scalar; strings are quoted unless they read back as
// the same string in YAML 1.1 and 1.2 alike.
func scalar(v any) string {
	switch x := v.(type) {
	case string:
		switch strings.ToLower(x) {
		case "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", "":
			return strconv.Quote(x)
		}
		if plain.MatchString(x) {
			return x
		}
		return strconv.Quote(x)
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return "null"
	default:
		return fmt.Sprint(x)
	}
}
