package compiler

import (
	"strings"
	"testing"

	"github.com/dibuild/dib/elements"
)

// Upstream elements on the elements path that cannot run unchanged under
// dib are named in the plan, with file and line, before anything runs;
// dib's own elements and harmless hooks give no warning. Warnings come in
// hook-tree path order.
func TestCompatWarnings(t *testing.T) {
	dir := t.TempDir()
	writeElement(t, dir, "pyhook", map[string]string{
		"extra-data.d/10-py": "#!/usr/bin/env python3\n# import diskimage_builder in a comment is fine\nimport os\nfrom diskimage_builder.block_device import utils\n",
	})
	writeElement(t, dir, "blockdev", map[string]string{
		"finalise.d/50-mounts": "#!/bin/bash\nset -eu\ndib-block-device getval mount-points\n",
	})
	writeElement(t, dir, "rebootstrap", map[string]string{
		"root.d/08-mine":  "#!/bin/bash\nset -eu\nsudo debootstrap bookworm \"$TARGET_ROOT\" http://deb.debian.org/debian\n",
		"install.d/10-ok": "#!/bin/bash\necho debootstrap is only a word here\n",
	})
	writeElement(t, dir, "harmless", map[string]string{
		"install.d/20-fine": "#!/bin/bash\nset -eu\necho hello\n",
	})
	p := mustCompile(t, "Dibfile", "name: c\ndistro: debian-minimal\nelements: [vm, pyhook, blockdev, rebootstrap, harmless]\noutputs: [qcow2]\n", elements.FS(), nil, dir)
	var got []string
	for _, d := range p.Diagnostics {
		if d.Subject != "" && strings.Contains(d.Message, "(from ") {
			got = append(got, d.Message)
		}
	}
	want := []string{
		"element pyhook (from " + dir + "): extra-data.d/10-py line 4 imports DIB's Python package diskimage_builder, which dib does not install",
		"element blockdev (from " + dir + "): finalise.d/50-mounts line 3 calls DIB's block-device tool; dib lays out and assembles the disk itself from the plan",
		"element rebootstrap (from " + dir + "): root.d/08-mine line 3 bootstraps the root filesystem again; dib's plan already has a bootstrap step that made the tree",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	plain := mustCompile(t, "Dibfile", "name: c\ndistro: debian-minimal\nelements: [vm, devuser]\noutputs: [qcow2]\n", elements.FS(), nil)
	for _, d := range plain.Diagnostics {
		if strings.Contains(d.Message, "(from ") {
			t.Errorf("built-in elements warned: %s", d.Message)
		}
	}
}
