package disk

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/plan/format"
)

func needTools(tb testing.TB, tools ...string) {
	tb.Helper()
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
				tb.Fatalf("%s not installed (Debian: qemu-utils squashfs-tools)", t)
			}
			tb.Skipf("%s not installed", t)
		}
	}
}

func sparseRaw(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "disk.raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Truncate(64 << 20)
	for i, off := range []int64{0, 5 << 20, 63 << 20} {
		f.WriteAt([]byte(strings.Repeat("dib output test ", 4096*(i+1))), off)
	}
	return p
}

func TestWriteOutputsReadBack(t *testing.T) {
	needTools(t, "qemu-img")
	dir := t.TempDir()
	raw := sparseRaw(t, dir)
	var outs []Output
	for _, f := range format.All() {
		if f.Source == format.Disk {
			outs = append(outs, Output{Format: f.Name, Path: filepath.Join(dir, "out."+f.Ext)})
		}
	}
	outs = append(outs,
		Output{Format: "qcow2", Path: filepath.Join(dir, "out-c.qcow2"), Compress: true},
		Output{Format: "qcow2", Path: filepath.Join(dir, "out-opts.qcow2"), QemuImgOptions: "compat=0.10"},
		Output{Format: "vhd", Subformat: "fixed", Path: filepath.Join(dir, "out-fixed.vhd")},
		Output{Format: "vmdk", Subformat: "streamOptimized", Path: filepath.Join(dir, "out-stream.vmdk")})
	if err := WriteOutputs(context.Background(), OutputsInput{Raw: raw, Outputs: outs}); err != nil {
		t.Fatal(err)
	}
	for _, o := range outs {
		t.Run(filepath.Base(o.Path), func(t *testing.T) {
			f, _ := format.Lookup(o.Format)
			if f.Name == "raw" {
				f.QemuImg = "raw"
			}
			if out, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", f.QemuImg, raw, o.Path).CombinedOutput(); err != nil {
				t.Fatalf("qemu-img compare: %v\n%s", err, out)
			}
			if f.QemuImg == "qcow2" || f.QemuImg == "vhdx" || f.QemuImg == "vdi" {
				if out, err := exec.Command("qemu-img", "check", "-f", f.QemuImg, o.Path).CombinedOutput(); err != nil {
					t.Fatalf("qemu-img check: %v\n%s", err, out)
				}
			}
			info, err := exec.Command("qemu-img", "info", "--output=json", o.Path).Output()
			if err != nil {
				t.Fatal(err)
			}
			switch filepath.Base(o.Path) {
			case "out-fixed.vhd":
				b, _ := os.ReadFile(o.Path)
				if len(b) != 64<<20+512 || string(b[len(b)-512:len(b)-504]) != "conectix" {
					t.Errorf("fixed VHD: size %d, want raw + 512-byte footer", len(b))
				}
			case "out-stream.vmdk":
				if !strings.Contains(string(info), `"create-type": "streamOptimized"`) {
					t.Errorf("vmdk subformat not applied: %s", info)
				}
			case "out-opts.qcow2":
				if !strings.Contains(string(info), `"compat": "0.10"`) {
					t.Errorf("qemu-img-options not applied: %s", info)
				}
			}
		})
	}
	if e, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(e) > 0 {
		t.Errorf("temporary files left: %v", e)
	}
}

func TestWriteOutputsRawMovedLast(t *testing.T) {
	needTools(t, "qemu-img")
	dir := t.TempDir()
	raw := sparseRaw(t, dir)
	want, _ := os.ReadFile(raw)
	err := WriteOutputs(context.Background(), OutputsInput{Raw: raw, MoveRaw: true, Outputs: []Output{
		{Format: "raw", Path: filepath.Join(dir, "final.raw")},
		{Format: "vmdk", Path: filepath.Join(dir, "final.vmdk")}, // needs the raw after the raw output
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(raw); !os.IsNotExist(err) {
		t.Errorf("assembled raw still there after a move")
	}
	got, _ := os.ReadFile(filepath.Join(dir, "final.raw"))
	if string(got) != string(want) {
		t.Errorf("moved raw differs")
	}
}

func TestWriteOutputsFailureLeavesNothing(t *testing.T) {
	needTools(t, "qemu-img")
	dir := t.TempDir()
	err := WriteOutputs(context.Background(), OutputsInput{Raw: filepath.Join(dir, "missing.raw"), Outputs: []Output{
		{Format: "vmdk", Path: filepath.Join(dir, "o.vmdk")},
	}})
	if err == nil {
		t.Fatal("want an error")
	}
	if e, _ := os.ReadDir(dir); len(e) > 0 {
		t.Errorf("left behind: %v", e)
	}
	if err := WriteOutputs(context.Background(), OutputsInput{Outputs: []Output{{Format: "tar", Path: "x"}}}); err == nil || !strings.Contains(err.Error(), "not a disk output format") {
		t.Errorf("unknown format: %v", err)
	}
}
