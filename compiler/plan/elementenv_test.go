package plan

import "testing"

// TestElementYAML: IMAGE_ELEMENT_YAML byte for byte as DIB's element-info
// writes it (PyYAML safe_dump; the expected text is PyYAML 6's output for
// the same map), and get_image_element_array as bash exports it.
func TestElementYAML(t *testing.T) {
	dirs := []ElementDir{{"z", "-x"}, {"base", "/tmp/dib_build.x/elements/base"}, {"yes", "/a b/c"}, {"x", "/p:q"},
		{"n1", "123"}, {"ee", "/o'k: x"}, {"aa", "/a#b"}, {"f", "1.5"}, {"dash", "- x"}}
	want := "aa: /a#b\nbase: /tmp/dib_build.x/elements/base\ndash: '- x'\nee: '/o''k: x'\nf: '1.5'\nn1: '123'\nx: /p:q\n'yes': /a b/c\nz: -x\n"
	if got := ElementYAML(dirs); got != want {
		t.Errorf("ElementYAML =\n%q\nwant\n%q", got, want)
	}
	fn := ElementArrayFunction([]ElementDir{{"vm", "/b/vm"}, {"base", "/b/base"}})
	if want := "() {  echo \"[vm]=/b/vm [base]=/b/base \"\n}"; fn != want {
		t.Errorf("ElementArrayFunction = %q, want %q", fn, want)
	}
}

func TestElementDirs(t *testing.T) {
	p := &Plan{Elements: []Element{{Name: "base", Source: "builtin"}, {Name: "mine", Source: "/srv/elements"}, {Name: "vm", Source: "builtin"}}}
	got := ElementDirs(p, []string{"vm", "mine"}, "/tmp/b")
	want := []ElementDir{{"vm", "/tmp/b/elements/vm"}, {"mine", "/srv/elements/mine"}, {"base", "/tmp/b/elements/base"}}
	if len(got) != len(want) {
		t.Fatalf("ElementDirs = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("ElementDirs[%d] = %v, want %v", i, got[i], want[i])
		}
	}
}
