package spec

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/plan/format"
	"github.com/dibuild/dib/schema"
	"github.com/dibuild/dib/spec/limits"
)

// valueRule returns the schema's value rule name (#/$defs/value-rules/NAME)
// as generic JSON.
func valueRule(t *testing.T, name string) map[string]any {
	t.Helper()
	var doc struct {
		Defs struct {
			ValueRules map[string]map[string]any `json:"value-rules"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(schema.DibfileJSON(), &doc); err != nil {
		t.Fatal(err)
	}
	r, ok := doc.Defs.ValueRules[name]
	if !ok {
		t.Fatalf("the schema has no value rule %q", name)
	}
	return r
}

// at reads a member of generic JSON by a path of keys and indexes.
func at(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// strs renders a JSON array or a []string as "[a b]"; nil is "[]".
func strs(v any) string {
	var out []string
	switch x := v.(type) {
	case []string:
		out = x
	case []any:
		for _, e := range x {
			out = append(out, fmt.Sprint(e))
		}
	}
	return fmt.Sprint(out)
}

// TestValueRulesFromGo: the numbers, names and patterns of the schema's
// value rules are the ones spec's checks and spec/limits use, so that the
// editor refuses what dib refuses. The Go values are the source of truth;
// this test fails when the schema drifts from them.
func TestValueRulesFromGo(t *testing.T) {
	eq := func(what string, got, want any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: schema has %v, dib %v", what, got, want)
		}
	}
	keys := limits.Default().Keys
	eq("images maxItems", at(valueRule(t, "images"), "maxItems"), MaxImages)
	eq("name maxLength", at(valueRule(t, "name"), "maxLength"), MaxImageNameBytes)
	rel := valueRule(t, "release")
	eq("release maxLength", at(rel, "maxLength"), maxReleaseBytes)
	eq("release pattern", at(rel, "pattern"), releasePattern.String())
	eq("release not pattern", at(rel, "not", "pattern"), `\.\.`)
	env := valueRule(t, "env")
	eq("env maxProperties", at(env, "maxProperties"), keys)
	eq("mapping maxProperties", at(valueRule(t, "mapping"), "maxProperties"), keys)
	eq("yaml maxProperties", at(valueRule(t, "yaml"), "then", "maxProperties"), keys)
	var reserved []string
	for _, n := range at(env, "propertyNames", "not", "enum").([]any) {
		reserved = append(reserved, n.(string))
	}
	eq("reserved variables", reserved, slices.Sorted(maps.Keys(reservedEnv)))
	pkg := valueRule(t, "package")
	eq("package maxLength", at(pkg, "maxLength"), maxPackageBytes)
	eq("package patterns", []any{at(pkg, "anyOf", 0, "pattern"), at(pkg, "anyOf", 1, "pattern")}, []any{debPackage.String(), rpmPackage.String()})
	eq("qemu-img-options maxProperties", at(valueRule(t, "qemu-img-options"), "maxProperties"), keys)
	perFormat := map[string][2]any{}
	for _, r := range at(valueRule(t, "outputs"), "items", "allOf").([]any) {
		props := at(r, "then", "properties")
		perFormat[at(r, "if", "properties", "format", "const").(string)] = [2]any{at(props, "subformat", "enum"), at(props, "qemu-img-options", "propertyNames", "enum")}
	}
	for _, f := range format.All() {
		got := perFormat[f.Name]
		eq(f.Name+" subformats", strs(got[0]), strs(f.Subformats))
		eq(f.Name+" qemu-img options", strs(got[1]), strs(f.QemuImgOptions))
		delete(perFormat, f.Name)
	}
	if len(perFormat) > 0 {
		t.Errorf("the schema has output rules for formats the table lacks: %v", perFormat)
	}
	eq("FS_TYPE values", strs(at(valueRule(t, "env-values"), "properties", "FS_TYPE", "then", "enum")), strs(fsTypes))
	var once []string
	for _, r := range at(valueRule(t, "outputs-once"), "dependentSchemas", "outputs", "properties", "outputs", "allOf").([]any) {
		once = append(once, at(r, "contains", "anyOf", 0, "const").(string))
		eq("outputs-once maxContains", at(r, "maxContains"), 1)
	}
	eq("formats listed at most once", strs(once), strs(format.Names()))
	eq("docker target maxLength", at(valueRule(t, "docker-target"), "maxLength"), maxDockerTargetBytes)
	eq("root-label maxLength", at(valueRule(t, "root-label"), "maxLength"), slices.Max(slices.Collect(maps.Values(labelMax))))
	perFS := map[string]int{}
	for _, r := range at(valueRule(t, "root-label-per-fs"), "allOf").([]any) {
		fs := at(r, "if", "properties", "fs-type", "const").(string)
		perFS[fs] = int(at(r, "then", "properties", "root-label", "maxLength").(float64))
	}
	want := map[string]int{}
	for fs, n := range labelMax {
		if n < slices.Max(slices.Collect(maps.Values(labelMax))) {
			want[fs] = n
		}
	}
	eq("labels per filesystem", perFS, want)
}

// valueCase is one Dibfile (as JSON, which is YAML) and whether the
// schema's value rules are known to miss what spec's checks refuse in it.
type valueCase struct {
	doc    map[string]any
	misses string // why the schema cannot see this one; "" when it must agree
}

func one(k string, v any) valueCase {
	return valueCase{doc: map[string]any{"name": "p", "distro": "debian-minimal", k: v}}
}

func (c valueCase) with(k string, v any) valueCase {
	c.doc = maps.Clone(c.doc)
	c.doc[k] = v
	return c
}

func (c valueCase) missed(why string) valueCase { c.misses = why; return c }

// TestValueRulesAgreeWithChecks: on values at and around each limit and
// grammar, the schema's value rules refuse exactly what spec's checks
// refuse, except where a listed reason says the schema cannot see it. The
// schema never refuses what the checks accept (an editor must not flag a
// Dibfile dib takes).
func TestValueRulesAgreeWithChecks(t *testing.T) {
	var cases []valueCase
	for _, n := range []string{"a", strings.Repeat("a", MaxImageNameBytes), strings.Repeat("a", MaxImageNameBytes+1)} {
		cases = append(cases, one("name", n))
	}
	for _, r := range []string{"bookworm", "9-stream", "1.0~rc+2", "a..b", "a/b", ".x", "-x", "x y", strings.Repeat("x", maxReleaseBytes), strings.Repeat("x", maxReleaseBytes+1), "noble/..", "bookworm/../../../tmp/x/ESCAPE"} {
		cases = append(cases, one("release", r), one("distro", map[string]any{"name": "debian-minimal", "release": r}))
	}
	for _, v := range append(slices.Sorted(maps.Keys(reservedEnv)), "DIB_FOO", "PATH_X", "XPATH") {
		cases = append(cases, one("env", map[string]any{v: "x"}))
	}
	for _, p := range []string{"vim", "a;b", "--x", "-x", "perl(Data::Dumper)", "Foo_Bar", "x", "pkg=1.0-1", "a b", "libc6:amd64", "a:b:c", "é", strings.Repeat("a", maxPackageBytes), strings.Repeat("a", maxPackageBytes+1)} {
		cases = append(cases, one("packages", []any{p}))
	}
	for _, l := range []string{"root", "a\nb", "a b", "a\tb", "a\u202eb", "a\u0085b", "a\u00a0b", strings.Repeat("a", 16), strings.Repeat("a", 17)} {
		c := one("root-label", l)
		if len(l) == 17 {
			c = c.missed("without fs-type the filesystem is ext4 unless env sets FS_TYPE or defaults set fs-type; the rule is per fs-type written beside the label")
		}
		cases = append(cases, c)
	}
	for fs, n := range labelMax {
		for _, m := range []int{n, n + 1} {
			cases = append(cases, one("root-label", strings.Repeat("b", m)).with("fs-type", fs))
		}
		// Labels are bounded in bytes; JSON Schema counts characters.
		cases = append(cases, one("root-label", strings.Repeat("é", n/2)).with("fs-type", fs))
		if n < 255 {
			cases = append(cases, one("root-label", strings.Repeat("é", n/2+1)).with("fs-type", fs).missed("labels are bounded in bytes; maxLength counts characters"))
		}
	}
	for _, tg := range []string{"ubuntu", "ubuntu:22.04", "example.com/team/image:1.0", "UPPER/../x:@@", "localhost/x", "localhost:5000/x", "Registry.IO/x", "a.b", "a.b/c", "Ab/c", "a__b", "a___b", "team/Image", "a:1/b", "x:y/z", "a/b:c/d", "[::1]/x", strings.Repeat("x", maxDockerTargetBytes), strings.Repeat("x", maxDockerTargetBytes+1)} {
		cases = append(cases, one("outputs", []any{map[string]any{"format": "docker", "target": tg}}))
	}
	for _, f := range format.All() {
		for _, sub := range append(slices.Clone(f.Subformats), "weird", "Fixed") {
			if f.Takes(format.OptSubformat) {
				cases = append(cases, one("outputs", []any{map[string]any{"format": f.Name, "subformat": sub}}))
			}
		}
		if !f.Takes(format.OptQemuImgOptions) {
			continue
		}
		for _, o := range append(slices.Clone(f.QemuImgOptions), "nosuch", "subformat") {
			for _, v := range []any{"1.1", "1.1,backing_file=/etc/shadow", "a b", "", "a\tb", "x\u202ey", "é", 1, true} {
				cases = append(cases, one("outputs", []any{map[string]any{"format": f.Name, "qemu-img-options": map[string]any{o: v}}}))
			}
		}
	}
	for _, m := range []string{"http://deb.debian.org/debian", "HTTPS://x/y", "ftp://h", "file:///srv/mirror", "file:/srv", "file://host/srv",
		"not a url", "gopher://x/debian", "http://user:pw@deb.example.org/debian", "file:relative/path", "deb.debian.org/debian",
		"http://h/a;b", "http://h/$x", "http://h/\u00a0", "http:h", "http:/h", "file://h", "http://h?x@y", "http://h#x"} {
		cases = append(cases, one("mirror", m), one("distro", map[string]any{"name": "debian-minimal", "mirror": m}))
	}
	for _, m := range []string{"http://:80/x", "http://h/%zz", "http://[::1/x"} {
		cases = append(cases, one("mirror", m).missed("url.Parse refuses it; the pattern checks the scheme, the host's characters and the user information only"))
	}
	for _, u := range []struct {
		name  string
		bytes int64
	}{{"B", 1}, {"K", 1e3}, {"KB", 1e3}, {"M", 1e6}, {"MB", 1e6}, {"G", 1e9}, {"GB", 1e9}, {"T", 1e12}, {"TB", 1e12}, {"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}} {
		n := MaxImageSize / u.bytes
		for _, v := range []string{fmt.Sprint(n), fmt.Sprint(n + 1), fmt.Sprintf("%d.0", n+1), fmt.Sprintf("000%d ", n+1), fmt.Sprint(n * 10)} {
			cases = append(cases, one("image-size", v+u.name))
		}
	}
	// A number is GiB: the first one dib refuses is 16384+2^-20 (a whole
	// KiB above 16 TiB); the schema's bound is that float's shortest
	// decimal, so no float lies between the two.
	for _, v := range []any{4, 16384, 16385, 16384 + 1.0/(1<<21), 16384 + 1.0/(1<<20), math.Nextafter(16384+1.0/(1<<20), 0), 16384.00001} {
		cases = append(cases, one("image-size", v))
	}
	for k, vs := range map[string][]string{"FS_TYPE": append(slices.Clone(fsTypes), "zfs", ""), "DIB_DEFAULT_INSTALLTYPE": {"source", "package", "binary", ""},
		"MAX_ONLINE_RESIZE": {"5", "lots", "+5", ""}, "DIB_DEBUG_TRACE": {"1", "x", ""}} {
		for _, v := range vs {
			cases = append(cases, one("env", map[string]any{k: v}))
		}
	}
	for _, v := range []any{"file:///etc/layout.yaml", "", map[string]any{"value": "x"}} {
		c := one("block-device", "efi").with("env", map[string]any{"DIB_BLOCK_DEVICE_CONFIG": v})
		if _, ok := v.(map[string]any); ok {
			c = c.missed("the rule covers the string form of the variable")
		}
		cases = append(cases, c)
	}
	for _, outs := range [][]any{{"qcow2", "raw", map[string]any{"format": "qcow2", "compress": false}}, {map[string]any{"format": "vhd"}, map[string]any{"format": "vhd", "subformat": "fixed"}},
		{"raw", "qcow2", "vhd"}, {map[string]any{"format": "tar"}, "tgz"}} {
		cases = append(cases, one("outputs", outs))
	}
	for _, n := range []int{MaxImages, MaxImages + 1} {
		var imgs []any
		for i := range n {
			imgs = append(imgs, map[string]any{"name": fmt.Sprintf("i%d", i)})
		}
		cases = append(cases, valueCase{doc: map[string]any{"defaults": map[string]any{"distro": "debian-minimal"}, "images": imgs}})
	}
	checkValueCases(t, cases)
}

// checkValueCases runs each case through the schema (its value rules must
// be the only problems) and through decode, spec's checks alone.
func checkValueCases(t *testing.T, cases []valueCase) {
	t.Helper()
	sch, err := schema.Dibfile()
	if err != nil {
		t.Fatal(err)
	}
	agreeOn := map[bool]int{}
	for _, c := range cases {
		src, err := json.Marshal(c.doc)
		if err != nil {
			t.Fatal(err)
		}
		doc, pos, ds := parse("f.yaml", src)
		if ds.HasErrors() {
			t.Fatalf("%s: %v", src, ds)
		}
		sds, vds := sch.Check("f.yaml", doc, pos)
		if len(sds) > 0 {
			t.Errorf("%s: the schema's structure refuses it: %v", src, sds)
			continue
		}
		_, dds := decode("f.yaml", doc.(map[string]any), pos, func(string) (string, bool) { return "x", true })
		schemaRefuses, dibRefuses := len(vds) > 0, dds.HasErrors()
		switch {
		case schemaRefuses && !dibRefuses:
			t.Errorf("%.200s: the schema refuses what dib accepts: %v", src, vds)
		case c.misses != "" && (schemaRefuses || !dibRefuses):
			t.Errorf("%.200s: listed as missed (%s), but schema refuses: %v, dib refuses: %v", src, c.misses, schemaRefuses, dibRefuses)
		case c.misses == "" && schemaRefuses != dibRefuses:
			t.Errorf("%.200s: dib refuses (%v), the schema does not", src, dds)
		default:
			agreeOn[dibRefuses]++
		}
	}
	if agreeOn[true] == 0 || agreeOn[false] == 0 {
		t.Errorf("agreement on %d refused and %d accepted cases; the table should have both", agreeOn[true], agreeOn[false])
	}
}
