package disk

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/dibuild/dib/compiler/plan/layout"
)

// The layouts in testdata are the compiler's output for DIB's own
// block-device elements (regenerate with
// `dib blockdev $DIB_SKELETON/block-device-E/block-device-default.yaml --size S --json`,
// S = 3GiB, or 64GiB for efi-lvm whose root is 40G). Each is assembled and
// checked against the tools: partition table byte for byte with sfdisk
// and sgdisk, every filesystem with its fsck, the LVM metadata with lvs.
func TestAssembleCompilerLayouts(t *testing.T) {
	needHost(t, append(assemblyTools, "mkfs.xfs", "xfs_repair", "pvcreate", "lvs", "blkid")...)
	files, _ := filepath.Glob("testdata/layout-*.json")
	if len(files) == 0 {
		t.Fatal("no testdata layouts")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "layout-"), ".json"), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var l layout.Layout
			if err := json.Unmarshal(b, &l); err != nil {
				t.Fatal(err)
			}
			tree := makeTree(t)
			img := filepath.Join(t.TempDir(), "disk.raw")
			r, err := Assemble(context.Background(), Input{Layout: &l, Tree: tree, Output: img, WorkDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			for i := range l.PartitionTables {
				checkTable(t, img, &l.PartitionTables[i])
			}
			// The image stays sparse: metadata and journals only.
			var st syscall.Stat_t
			if err := syscall.Stat(img, &st); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d MiB image, %d MiB allocated", st.Size>>20, st.Blocks*512>>20)
			if st.Blocks*512 > 400<<20 {
				t.Errorf("%d MiB allocated: the image is not sparse", st.Blocks*512>>20)
			}
			for _, fs := range l.Filesystems {
				v := volumeOf(t, r, fs.Base)
				switch fs.Type {
				case "ext2", "ext3", "ext4":
					checkExt(t, img, v.Offset, nil)
				case "vfat":
					files := map[string]string{}
					if fs.MountPoint == "/boot/efi" {
						files["/EFI/BOOT/BOOTX64.EFI"] = "not really an EFI binary\n"
					}
					checkVfat(t, img, v.Offset, v.Size, files)
					// FAT sectors are the disk's logical sectors.
					bs := make([]byte, 512)
					f, _ := os.Open(img)
					f.ReadAt(bs, v.Offset)
					f.Close()
					if got := int(bs[11]) | int(bs[12])<<8; got != l.Images[0].SectorSize {
						t.Errorf("%s: FAT bytes per sector %d, want %d", fs.Node, got, l.Images[0].SectorSize)
					}
				case "xfs":
					dev := strings.TrimSpace(sh(t, "losetup", "--find", "--show", "--read-only", "-o", fmt.Sprint(v.Offset), "--sizelimit", fmt.Sprint(v.Size), img))
					out, err := exec.Command("xfs_repair", "-n", dev).CombinedOutput()
					sh(t, "losetup", "-d", dev)
					if err != nil {
						t.Errorf("xfs_repair %s: %v\n%s", fs.Node, err, out)
					}
				}
				out := sh(t, "blkid", "-p", "-O", fmt.Sprint(v.Offset), "-S", fmt.Sprint(v.Size), "-o", "export", img)
				if !strings.Contains(out, "LABEL="+fs.Label+"\n") || (fs.Type != "vfat" && !strings.Contains(out, "UUID="+fs.UUID+"\n")) {
					t.Errorf("%s: blkid\n%s", fs.Node, out)
				}
			}
			for _, g := range l.LVM {
				for _, pv := range g.PVs {
					v := volumeOf(t, r, pv.Base)
					dev := strings.TrimSpace(sh(t, "losetup", "--find", "--show", "--read-only", "-o", fmt.Sprint(v.Offset), "--sizelimit", fmt.Sprint(v.Size), img))
					out, err := exec.Command("lvs", "--config="+lvmConfig([]string{dev}), "--noheadings", "-o", "vg_name,lv_name").CombinedOutput()
					sh(t, "losetup", "-d", dev)
					for _, lv := range g.LVs {
						if err != nil || !strings.Contains(string(out), lv.VG+" "+lv.Node) && !strings.Contains(string(out), lv.Node) {
							t.Errorf("lvs does not show %s/%s: %v\n%s", lv.VG, lv.Node, err, out)
						}
					}
				}
			}
			noLoopOrMount(t, img, "")
		})
	}
}
