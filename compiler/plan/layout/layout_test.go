package layout

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestJSONRoundTrip checks that a layout survives JSON unchanged, byte for
// byte: the plan file carries it and the runtime reads it back.
func TestJSONRoundTrip(t *testing.T) {
	in := &Layout{
		Images: []Image{{Node: "image0", FileName: "image0.raw", SizeBytes: 4 << 30, SectorSize: 512}},
		PartitionTables: []PartitionTable{{
			Name: "partitioning_image0", Base: "image0", Label: LabelMBR, SectorSize: 512,
			DiskSizeBytes: 4 << 30, DiskSectors: 8388608, AlignBytes: 1 << 20, MBRDiskID: 0x12345678,
			Partitions: []Partition{
				{Node: "root", Number: 1, Kind: KindPrimary, Start: 2048, Size: 4096, StartBytes: 1 << 20, SizeBytes: 2 << 20, Boot: true, MBRType: 0x83, DeviceNode: "image01"},
				{Node: "data", Number: 5, Kind: KindLogical, Start: 8192, Size: 2048, StartBytes: 4 << 20, SizeBytes: 1 << 20, MBRType: 0x83, EBRSector: 6144, DeviceNode: "image05"},
			},
			Extended:      &Extended{Number: 2, Start: 6144, Size: 8382464, Type: 0x0f, DeviceNode: "image02"},
			MBRRecords:    []MBRRecord{{Sector: 0, Slot: 0, Boot: true, Type: 0x83, CHSStart: [3]uint8{32, 33, 0}, LBAStart: 2048, LBASize: 4096}},
			MBRSignatures: []int64{0, 6144},
		}},
		LVM: []LVM{{Node: "lvm", PVs: []PV{{Node: "pv", Base: "root", Options: []string{"--force"}}},
			VGs: []VG{{Node: "vg", PVs: []string{"pv"}, ExtentBytes: 4 << 20}},
			LVs: []LV{{Node: "lv", VG: "vg", Extents: "23%VG", MapperName: "vg-lv"}}}},
		Filesystems:   []Filesystem{{Node: "mkfs_root", Base: "root", Type: "ext4", Label: "cloudimg-rootfs", UUID: "u", Root: true, Command: []string{"mkfs"}}},
		Mounts:        []Mount{{Node: "mount_mkfs_root", MountPoint: "/", Filesystem: "mkfs_root"}},
		Fstab:         []FstabEntry{{Node: "f", Line: "LABEL=x / ext4 defaults 0 1"}},
		CreationOrder: []Step{{Node: "image0", Kind: KindLocalLoop, Plugin: "local_loop"}},
		CleanupOrder:  []string{"image0"},
		GetVal:        GetVal{RootLabel: "cloudimg-rootfs", Errors: map[string]string{"b": "x", "a": "y"}},
	}
	b1, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Layout
	if err := json.Unmarshal(b1, &out); err != nil {
		t.Fatal(err)
	}
	b2, err := json.Marshal(&out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1, b2) {
		t.Fatalf("round trip differs:\n%s\n%s", b1, b2)
	}
	if _, p := out.Partition("data"); p == nil || p.Number != 5 {
		t.Fatalf("Partition(data) = %+v", p)
	}
	if out.RootFilesystem() == nil || out.Filesystem("mkfs_root") == nil || out.Image("image0") == nil {
		t.Fatal("lookup helpers failed")
	}
}
