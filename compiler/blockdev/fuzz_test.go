package blockdev

import "testing"

// FuzzCompile checks that no input makes the parser or the compiler panic.
func FuzzCompile(f *testing.F) {
	seeds := []string{
		"- local_loop:\n    name: image0\n    mkfs:\n      name: mkfs_root\n      mount:\n        mount_point: /\n        fstab:\n          fsck-passno: 1\n",
		"- local_loop:\n    name: image0\n- partitioning:\n    base: image0\n    label: mbr\n    partitions:\n      - name: root\n        flags: [boot, primary]\n        size: 50%\n      - name: l\n        size: 100%\n        mkfs:\n          type: xfs\n          mount:\n            mount_point: /\n",
		"- local_loop:\n    name: image0\n- partitioning:\n    base: image0\n    label: gpt\n    partitions:\n      - name: root\n        size: 100%\n- lvm:\n    name: lvm\n    pvs:\n      - name: pv\n        base: root\n    vgs:\n      - name: vg\n        base: [pv]\n    lvs:\n      - name: lv\n        base: vg\n        extents: 100%FREE\n- mkfs:\n    name: mkfs_root\n    base: lv\n    mount:\n      mount_point: /\n",
	}
	for _, s := range seeds {
		f.Add(s, int64(4<<30), 0)
	}
	f.Fuzz(func(t *testing.T, src string, size int64, sector int) {
		cfg, ds := ParseYAML([]byte(src))
		if ds.HasErrors() {
			return
		}
		_, _ = Compile(cfg, Params{ImageSize: size, SectorSize: sector, RootFSType: "ext4"})
	})
}
