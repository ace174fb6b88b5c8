package blockdev

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/internal/golden"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      any
		want    int64
		wantErr bool
	}{
		{"4GiB", 4 << 30, false},
		{"10 MiB", 10 << 20, false},
		{"4194304KiB", 4 << 30, false},
		{"1TiB", 1 << 40, false},
		{"1G", 1e9, false},
		{"3GB", 3e9, false},
		{"1800M", 1.8e9, false},
		{"1.75TB", 1.75e12, false},
		{"1.1K", 1100, false}, // float math truncated, as int(1000 * 1.1)
		{"K", 1000, false},    // an empty number means 1
		{"512", 512, false},
		{"512B", 512, false},
		{int64(1024), 1024, false},
		{"5 XB", 0, true},
		{"1.2.3G", 0, true},
		{"-1G", 0, true},
		{"4gib", 0, true}, // units are case-sensitive, as in DIB
		{[]any{"x"}, 0, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.in), func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("ParseSize(%v) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func mustCompile(t *testing.T, src string, p Params) *layout.Layout {
	t.Helper()
	cfg, ds := ParseYAML([]byte(src))
	if ds.HasErrors() {
		t.Fatalf("ParseYAML: %v", ds)
	}
	l, ds := Compile(cfg, p)
	if ds.HasErrors() || l == nil {
		t.Fatalf("Compile: %v", ds)
	}
	return l
}

// TestMBRLogical checks DIB's MBR writer: a primary, then logical
// partitions inside one extended partition, each with its EBR one
// alignment before its data, EBRs linked by type-5 entries, CHS values as
// DIB computes them.
func TestMBRLogical(t *testing.T) {
	src := `
- local_loop:
    name: image0
    size: 64MiB
- partitioning:
    base: image0
    label: mbr
    partitions:
      - name: root
        flags: [boot, primary]
        size: 8MiB
        mkfs:
          type: ext4
          mount:
            mount_point: /
      - name: l1
        size: 8MiB
      - name: l2
        type: '82'
        size: 100%
`
	l := mustCompile(t, src, Params{})
	pt := l.PartitionTables[0]
	type part struct {
		Node             string
		Num              int
		Kind             string
		Start, Size, EBR int64
		Boot             bool
		Type             uint8
	}
	var got []part
	for _, p := range pt.Partitions {
		got = append(got, part{p.Node, p.Number, p.Kind, p.Start, p.Size, p.EBRSector, p.Boot, p.MBRType})
	}
	want := []part{
		{"root", 1, layout.KindPrimary, 2048, 16384, 0, true, 0x83},
		{"l1", 5, layout.KindLogical, 20480, 16384, 18432, false, 0x83},
		{"l2", 6, layout.KindLogical, 38912, 92160, 36864, false, 0x82},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("partitions:\n got %+v\nwant %+v", got, want)
	}
	if e := pt.Extended; e == nil || e.Number != 2 || e.Start != 18432 || e.Size != 131072-18432 || e.Type != 0x0f {
		t.Errorf("extended = %+v", pt.Extended)
	}
	wantRecords := []layout.MBRRecord{
		{Sector: 0, Slot: 0, Boot: true, Type: 0x83, CHSStart: [3]uint8{32, 33, 0}, CHSEnd: [3]uint8{38, 37, 1}, LBAStart: 2048, LBASize: 16384},
		{Sector: 0, Slot: 1, Type: 0x0f, LBAStart: 18432, LBASize: 112640},
		{Sector: 18432, Slot: 0, Type: 0x83, LBAStart: 2048, LBASize: 16384},
		{Sector: 18432, Slot: 1, Type: 0x05, LBAStart: 18432, LBASize: 94208},
		{Sector: 36864, Slot: 0, Type: 0x82, LBAStart: 2048, LBASize: 92160},
	}
	if len(pt.MBRRecords) != len(wantRecords) {
		t.Fatalf("records: %+v", pt.MBRRecords)
	}
	for i, w := range wantRecords {
		g := pt.MBRRecords[i]
		if i > 0 { // CHS checked on the first record only
			g.CHSStart, g.CHSEnd = [3]uint8{}, [3]uint8{}
		}
		if g != w {
			t.Errorf("record %d = %+v, want %+v", i, g, w)
		}
	}
	if !reflect.DeepEqual(pt.MBRSignatures, []int64{0, 18432, 36864}) {
		t.Errorf("signatures = %v", pt.MBRSignatures)
	}
}

// TestMBRErrors checks the errors DIB's MBR code raises.
func TestMBRErrors(t *testing.T) {
	tests := []struct{ parts, want string }{
		{"      - name: a\n        type: 'EF00'\n        flags: [primary]\n        size: 10%\n", "ubyte format requires 0 <= number <= 255"},
		{"      - name: a\n        size: 10%\n      - name: b\n        flags: [primary]\n        size: 10%\n", "All primary partitions must be given first"},
		{"      - name: a\n        type: 'zz'\n        size: 10%\n", "invalid literal for int() with base 16: 'zz'"},
		{"      - name: a\n        flags: [bootable]\n        size: 10%\n", "Unknown flag: bootable"},
		{"      - name: a\n        flags: [primary]\n", "No size in partition a"},
	}
	for _, tt := range tests {
		src := "- local_loop:\n    name: image0\n- partitioning:\n    base: image0\n    label: mbr\n    partitions:\n" + tt.parts
		cfg, ds := ParseYAML([]byte(src))
		if ds.HasErrors() {
			t.Fatal(ds)
		}
		_, ds = Compile(cfg, Params{ImageSize: 1 << 30})
		if !strings.Contains(ds.Error(), tt.want) {
			t.Errorf("errors %q do not contain %q", ds.Error(), tt.want)
		}
	}
}

// TestGPT4K checks the efi-4k layout against what sgdisk 1.0.9 makes on a
// loop device with 4096-byte sectors (measured): 1 MiB alignment is 256
// sectors, the usable range is 6 … sectors-6.
func TestGPT4K(t *testing.T) {
	src := `
- local_loop:
    name: image0
    block_size: 4096
- partitioning:
    base: image0
    label: gpt
    partitions:
      - name: ESP
        type: 'EF00'
        size: 500MiB
      - name: BSP
        type: 'EF02'
        size: 8MiB
      - name: root
        type: '8300'
        size: 100%
        mkfs:
          type: ext4
          mount:
            mount_point: /
`
	l := mustCompile(t, src, Params{ImageSize: 4 << 30, RootFSType: "ext4"})
	pt := l.PartitionTables[0]
	if pt.SectorSize != 4096 || pt.FirstUsableLBA != 6 || pt.LastUsableLBA != 1048570 || pt.DiskSectors != 1048576 {
		t.Errorf("table = %+v", pt)
	}
	want := [][3]int64{{256, 128000, 1 << 20}, {128256, 2048, 128256 * 4096}, {130304, 918016, 130304 * 4096}}
	for i, p := range pt.Partitions {
		if got := [3]int64{p.Start, p.Size, p.StartBytes}; got != want[i] {
			t.Errorf("partition %s: start, size, start bytes = %v, want %v", p.Node, got, want[i])
		}
	}
	if pt.Partitions[0].GPTType != "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" {
		t.Errorf("ESP type %s", pt.Partitions[0].GPTType)
	}
	if l.Images[0].SectorSize != 4096 {
		t.Errorf("image sector size %d", l.Images[0].SectorSize)
	}
	// --sector-size overrides the config.
	l = mustCompile(t, src, Params{ImageSize: 4 << 30, SectorSize: 512})
	if l.PartitionTables[0].Partitions[0].Start != 2048 || l.PartitionTables[0].FirstUsableLBA != 34 {
		t.Errorf("512-byte override: %+v", l.PartitionTables[0].Partitions[0])
	}
}

func TestGPTDoesNotFit(t *testing.T) {
	src := "- local_loop:\n    name: image0\n- partitioning:\n    base: image0\n    label: gpt\n    partitions:\n      - name: root\n        size: 40G\n"
	cfg, _ := ParseYAML([]byte(src))
	r := compile(cfg, Params{ImageSize: 4 << 30})
	if r.stage != StageCreate || !strings.Contains(r.diags.Error(), "smaller than the block device configuration") {
		t.Fatalf("stage %q, diags %v", r.stage, r.diags)
	}
	if r.diags[0].Path != "/1/partitioning/partitions/0/size" {
		t.Errorf("path %q", r.diags[0].Path)
	}
}

// TestLVMExtents checks LV sizes rounded down to 4 MiB extents (DIB's
// -L <bytes>B), thin volumes, and the extent estimates of %VG.
func TestLVMExtents(t *testing.T) {
	src := `
- local_loop:
    name: image0
- partitioning:
    base: image0
    label: mbr
    partitions:
      - name: root
        flags: [primary]
        size: 3G
- lvm:
    name: lvm
    pvs:
      - name: pv
        base: root
    vgs:
      - name: vg
        base: [pv]
    lvs:
      - name: lv_root
        base: vg
        size: 1800M
      - name: lv_var
        base: vg
        extents: 50%VG
      - name: pool
        base: vg
        type: thin-pool
        size: 100MiB
      - name: thin
        base: vg
        type: thin
        thin-pool: pool
        size: 1G
- mkfs:
    name: mkfs_root
    base: lv_root
    mount:
      mount_point: /
`
	l := mustCompile(t, src, Params{ImageSize: 4 << 30, RootFSType: "xfs"})
	lvm := l.LVM[0]
	if lvm.VGs[0].Extents != 715 { // (3e9 - 1 MiB) / 4 MiB
		t.Errorf("vg extents %d", lvm.VGs[0].Extents)
	}
	want := []struct {
		node  string
		bytes int64
		ext   int64
	}{
		{"lv_root", 1799356416, 429},
		{"lv_var", 0, 357},
		{"pool", 100 << 20, 25},
		{"thin", 998244352, 238},
	}
	for i, w := range want {
		lv := lvm.LVs[i]
		if lv.Node != w.node || lv.SizeBytes != w.bytes || lv.ExtentCount != w.ext {
			t.Errorf("lv %d = %+v, want %+v", i, lv, w)
		}
	}
	if lvm.LVs[3].Type != layout.LVThin || lvm.LVs[3].ThinPool != "pool" || lvm.LVs[0].MapperName != "vg-lv_root" {
		t.Errorf("thin lv = %+v", lvm.LVs[3])
	}
	if fs := l.Filesystem("mkfs_root"); fs == nil || fs.Label != "img-rootfs" || fs.Base != "lv_root" {
		t.Errorf("root fs = %+v", fs)
	}
	// An unsupported type is DIB's error.
	cfg, _ := ParseYAML([]byte(strings.Replace(src, "type: thin-pool", "type: thin-pol", 1)))
	if _, ds := Compile(cfg, Params{ImageSize: 4 << 30}); !strings.Contains(ds.Error(), "Unsupported type:thin-pol, supported types: thin, thin-pool") {
		t.Errorf("diags %v", ds)
	}
}

// TestKahn checks networkx 2.8.8's generation order on a graph where a
// plain DFS or a sorted order would differ.
func TestKahn(t *testing.T) {
	mk := func(names ...string) []*node {
		var out []*node
		for _, n := range names {
			out = append(out, &node{name: n})
		}
		return out
	}
	nodes := mk("z", "b", "a", "c", "d")
	succ := map[string][]string{"z": {"c", "a"}, "b": {"d"}, "a": {"d"}, "c": {"d"}}
	indeg := map[string]int{"c": 1, "a": 1, "d": 3}
	order, left := kahn(nodes, succ, indeg)
	if want := []string{"z", "b", "c", "a", "d"}; !reflect.DeepEqual(order, want) || left != nil {
		t.Errorf("order %v left %v, want %v", order, left, want)
	}
	// A cycle leaves nodes over.
	_, left = kahn(mk("a", "b"), map[string][]string{"a": {"b"}, "b": {"a"}}, map[string]int{"a": 1, "b": 1})
	if len(left) != 2 {
		t.Errorf("cycle: left %v", left)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		src, want, path string
		line            int
	}{
		{"- foo\n", "Config entry not a dict: foo", "/0", 1},
		{"- local_loop:\n    name: a\n  mkfs:\n    base: a\n", "Config entry top-level should be a single dict", "/0", 1},
		{"- local_loop:\n    name: a\n- bogus:\n    x: 1\n", "Config entry is not a plugin value: {'bogus': {'x': 1}}", "/1/bogus", 3},
		{"- mkfs:\n    type: ext4\n", "neither 'name' nor 'base'", "/0/mkfs", 1},
	}
	for _, tt := range tests {
		_, ds := ParseYAML([]byte(tt.src))
		if len(ds) != 1 || !strings.Contains(ds[0].Message, tt.want) || ds[0].Path != tt.path || ds[0].Line != tt.line {
			t.Errorf("ParseYAML(%q) = %+v; want %q at %s line %d", tt.src, ds, tt.want, tt.path, tt.line)
		}
	}
}

// TestDeterministic checks that two compilations give the same JSON, that
// the seed changes the generated UUIDs, and that a config uuid wins.
func TestDeterministic(t *testing.T) {
	src := "- local_loop:\n    name: image0\n    mkfs:\n      name: mkfs_root\n      mount:\n        mount_point: /\n- local_loop:\n    name: image1\n    mkfs:\n      name: data\n      type: ext4\n      uuid: 11111111-2222-4333-8444-555555555555\n      mount:\n        mount_point: /data\n"
	p := Params{ImageSize: 1 << 30, RootFSType: "ext4", Seed: "a"}
	a, _ := json.Marshal(mustCompile(t, src, p))
	b, _ := json.Marshal(mustCompile(t, src, p))
	if !bytes.Equal(a, b) {
		t.Fatal("two compilations differ")
	}
	p.Seed = "b"
	l := mustCompile(t, src, p)
	c, _ := json.Marshal(l)
	if bytes.Equal(a, c) {
		t.Error("the seed does not change the UUIDs")
	}
	if l.Filesystem("data").UUID != "11111111-2222-4333-8444-555555555555" {
		t.Errorf("config uuid ignored: %s", l.Filesystem("data").UUID)
	}
}

// TestLayoutGolden keeps the layout of the block-device-efi default at
// 4 GiB (render's tests render it).
func TestLayoutGolden(t *testing.T) {
	src := `
- local_loop:
    name: image0
- partitioning:
    base: image0
    label: gpt
    partitions:
      - name: ESP
        type: 'EF00'
        size: 550MiB
        mkfs:
          type: vfat
          mount:
            mount_point: /boot/efi
            fstab:
              options: "defaults"
              fsck-passno: 2
      - name: BSP
        type: 'EF02'
        size: 8MiB
      - name: root
        type: '8300'
        size: 100%
        mkfs:
          type: ext4
          mount:
            mount_point: /
            fstab:
              options: "defaults"
              fsck-passno: 1
`
	l := mustCompile(t, src, Params{ImageSize: 4 << 30, RootFSType: "ext4", RootFSOpts: DefaultRootFSOpts("ext4", ""), Seed: "golden"})
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Compare(t, filepath.Join("testdata", "efi-4GiB.json"), append(b, '\n'))
}

// BenchmarkCompileLVM compiles the largest LVM oracle case
// (element-block-device-efi-lvm-default-64GiB).
func BenchmarkCompileLVM(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(oracleDir(b), "block-device", "element-block-device-efi-lvm-default-64GiB.json"))
	if err != nil {
		b.Skip(err)
	}
	var c oracleCase
	if err := json.Unmarshal(data, &c); err != nil {
		b.Fatal(err)
	}
	in, err := decodeOrdered(c.Input)
	if err != nil {
		b.Fatal(err)
	}
	p := Params{ImageSize: 64 << 30, RootFSType: "ext4"}
	b.ReportAllocs()
	for b.Loop() {
		cfg, ds := Parse(in)
		if ds.HasErrors() {
			b.Fatal(ds)
		}
		if _, ds := Compile(cfg, p); ds.HasErrors() {
			b.Fatal(ds)
		}
	}
}
