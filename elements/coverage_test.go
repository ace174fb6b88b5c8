package elements

import (
	"os"
	"regexp"
	"slices"
	"testing"
)

// docs/element-coverage.md lists every upstream element dib does not ship,
// and none that it ships.
func TestCoverageDocument(t *testing.T) {
	doc, err := os.ReadFile("../docs/element-coverage.md")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	row := regexp.MustCompile("(?m)^\\| (`[^|]+) \\|")
	name := regexp.MustCompile("`([a-z0-9-]+)`")
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		for _, n := range name.FindAllStringSubmatch(m[1], -1) {
			listed[n[1]] = true
		}
	}
	ents, err := os.ReadDir(skeletonDir(t))
	if err != nil {
		t.Fatal(err)
	}
	ours := Names()
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		shipped := slices.Contains(ours, e.Name())
		switch {
		case shipped && listed[e.Name()]:
			t.Errorf("%s is shipped now: remove it from docs/element-coverage.md", e.Name())
		case !shipped && !listed[e.Name()]:
			t.Errorf("upstream element %s is neither shipped nor listed in docs/element-coverage.md", e.Name())
		}
		delete(listed, e.Name())
	}
	for n := range listed {
		t.Errorf("docs/element-coverage.md lists %s, which upstream DIB does not have", n)
	}
}
