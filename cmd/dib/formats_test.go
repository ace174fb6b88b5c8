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
