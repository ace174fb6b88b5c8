package disk

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/plan/layout"
)

func TestTreeUsageMatchesDu(t *testing.T) {
	if _, err := exec.LookPath("du"); err != nil {
		t.Skip("no du")
	}
	tree := makeTree(t)
	// A sparse file: du counts allocated blocks only.
	f, _ := os.Create(filepath.Join(tree, "sparse"))
	f.Truncate(100 << 20)
	f.WriteAt([]byte("x"), 50<<20)
	f.Close()
	got, err := TreeUsage(tree)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("du", "--block-size=1", "-x", "-s", tree).Output()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	if got != want {
		t.Errorf("TreeUsage %d, du %d", got, want)
	}
	size, err := ImageSize(tree, SizeRule{Ext4: true, EFI: true})
	if err != nil {
		t.Fatal(err)
	}
	if wantSize := (want*10/6 + 589<<20 + 65535) / 65536 * 65536; size != wantSize {
		t.Errorf("ImageSize %d, want %d", size, wantSize)
	}
	// DIB_JOURNAL_SIZE and DIB_IMAGE_EXTRA_SIZE (usage + N MiB, no / 0.6).
	for _, c := range []struct {
		r    SizeRule
		want int64
	}{
		{SizeRule{Ext4: true, JournalMiB: 128}, want*10/6 + 128<<20},
		{SizeRule{Ext4: true, ExtraMiB: 200}, want + 200<<20 + 64<<20},
		{SizeRule{ExtraMiB: 0.5}, want + 512<<10},
	} {
		got, err := ImageSize(tree, c.r)
		if wantSize := (c.want + 65535) / 65536 * 65536; err != nil || got != wantSize {
			t.Errorf("%+v: ImageSize %d %v, want %d", c.r, got, err, wantSize)
		}
	}
}

func TestWriteFstab(t *testing.T) {
	root := t.TempDir()
	l := efiLayout(512)
	l.Fstab = []layout.FstabEntry{{Line: "LABEL=cloudimg-rootfs / ext4 defaults 0 1"}, {Line: "LABEL=MKFS_ESP /boot/efi vfat defaults 0 2"}}
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/fstab"), []byte("# old\n"), 0o644)
	if err := WriteFstab(root, l); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(root, "etc/fstab"))
	if want := "LABEL=cloudimg-rootfs / ext4 defaults 0 1\nLABEL=MKFS_ESP /boot/efi vfat defaults 0 2\n"; string(got) != want {
		t.Errorf("fstab %q", got)
	}
}
