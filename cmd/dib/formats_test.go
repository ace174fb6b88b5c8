package main

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/plan/format"
	"github.com/dibuild/dib/compiler/starter"
	"github.com/dibuild/dib/schema"
	"github.com/dibuild/dib/spec/dibyaml"
)

// TestOutputFormatTable checks that everything listing the output formats
// lists the format table's (compiler/plan/format), in its order: the
// schema's enum and examples, the Dibfile documentation, the
// disk-image-create help and the starter Dibfile. The spec checks, the
// compiler's host tools and the runtime's dispatch read the table itself
// (their own tests cover each format).
func TestOutputFormatTable(t *testing.T) {
	names := format.Names()
	var doc struct {
		Defs map[string]struct {
			Enum []string `json:"enum"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(schema.DibfileJSON(), &doc); err != nil {
		t.Fatal(err)
	}
	if got := doc.Defs["output-format"].Enum; !slices.Equal(got, names) {
		t.Errorf("schema $defs/output-format enum %q, format table %q", got, names)
	}
	// The outputs item's examples list every format, in order.
	var ex struct {
		Examples []string `json:"examples"`
	}
	raw := string(schema.DibfileJSON())
	i := strings.Index(raw, `"examples": [`+"\n"+`              "qcow2",`)
	if i < 0 {
		t.Fatal("schema: no examples list of the outputs item")
	}
	j := strings.Index(raw[i:], "]")
	if err := json.Unmarshal([]byte("{"+raw[i:i+j+1]+"}"), &ex); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ex.Examples, names) {
		t.Errorf("schema outputs examples %q, format table %q", ex.Examples, names)
	}

	space := regexp.MustCompile(`\s+`)
	plain := strings.Join(names, ", ")
	quoted := "`" + strings.Join(names, "`, `") + "`"
	md, err := os.ReadFile("../../docs/dibfile.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(space.ReplaceAllString(string(md), " "), quoted) {
		t.Errorf("docs/dibfile.md does not list the formats as %s", quoted)
	}
	if u := space.ReplaceAllString(dibyaml.Usage("disk-image-create"), " "); !strings.Contains(u, "output formats: "+plain+" ") {
		t.Errorf("disk-image-create help does not list the formats as %s", plain)
	}
	src, err := starter.Dibfile(starter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s := space.ReplaceAllString(strings.ReplaceAll(string(src), "\n# ", " "), " "); !strings.Contains(s, "(DIB: -t): "+plain+".") {
		t.Errorf("starter Dibfile does not list the formats as %s", plain)
	}
}

// TestOutputOptionRules checks the schema's per-format rules on an output's
// options (the outputs list's allOf: items whose format is F refuse, as
// false schemas, the options F does not take) against the format table, so that an editor refuses
// what dib refuses.
func TestOutputOptionRules(t *testing.T) {
	var doc struct {
		Defs map[string]struct {
			Properties map[string]struct {
				AllOf []struct {
					Ref   string `json:"$ref"`
					Items struct {
						If struct {
							Properties struct {
								Format struct {
									Const string `json:"const"`
								} `json:"format"`
							} `json:"properties"`
						} `json:"if"`
						Then struct {
							Properties map[string]bool `json:"properties"`
						} `json:"then"`
					} `json:"items"`
				} `json:"allOf"`
			} `json:"properties"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(schema.DibfileJSON(), &doc); err != nil {
		t.Fatal(err)
	}
	all := doc.Defs["image-keys"].Properties["outputs"].AllOf
	// The value rules (subformats, qemu-img options per format) are
	// spec's, compared with the format table by spec's TestValueRulesFromGo.
	rules := all[:0:0]
	for _, r := range all {
		if r.Ref != "#/$defs/value-rules/outputs" {
			rules = append(rules, r)
		}
	}
	var names []string
	for _, r := range rules {
		names = append(names, r.Items.If.Properties.Format.Const)
	}
	if !slices.Equal(names, format.Names()) {
		t.Fatalf("schema outputs item: rules for %q, format table %q", names, format.Names())
	}
	for i, f := range format.All() {
		var refused, want []string
		for k, v := range rules[i].Items.Then.Properties {
			if v {
				t.Errorf("%s: option %q is true in the schema; list only refused options, as false", f.Name, k)
			}
			refused = append(refused, k)
		}
		for _, k := range []string{format.OptCompress, format.OptQemuImgOptions, format.OptSubformat, format.OptTarget} {
			if !f.Takes(k) {
				want = append(want, k)
			}
		}
		slices.Sort(refused)
		slices.Sort(want)
		if !slices.Equal(refused, want) {
			t.Errorf("%s: schema refuses %q, format table refuses %q", f.Name, refused, want)
		}
	}
}
