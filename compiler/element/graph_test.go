package element

import (
	"bytes"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/dibuild/dib/internal/golden"
)

func TestWriteDOT(t *testing.T) {
	m := with(osFS(), fstest.MapFS{
		"vm/element-deps":                            file("bootloader\nblock-device\nos\n"),
		"bootloader/element-deps":                    file("os\n"),
		"grubby/element-provides":                    file("bootloader\n"),
		"grubby/element-deps":                        file("os\n"),
		"block-device-mbr/element-provides":          file("block-device\n"),
		"cyc-a/element-deps":                         file("cyc-b\n"),
		"cyc-b/element-deps":                         file("cyc-a\n"),
		"block-device-mbr/block-device-default.yaml": file(""),
	})
	res, ds := resolveMap(t, m, "os", "vm", "grubby", "block-device-mbr", "cyc-a")
	if ds.HasErrors() {
		t.Fatal(ds)
	}
	var a, b bytes.Buffer
	if err := res.WriteDOT(&a); err != nil {
		t.Fatal(err)
	}
	for range 5 { // map order must not leak into the output
		b.Reset()
		res, _ := resolveMap(t, m, "os", "vm", "grubby", "block-device-mbr", "cyc-a")
		if err := res.WriteDOT(&b); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Fatal("WriteDOT is not deterministic")
		}
	}
	golden.Compare(t, filepath.Join("testdata", "graph.dot"), a.Bytes())
}
