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
}

func TestBaremetal(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "boot"), 0o755)
	for _, v := range []string{"6.1.0-9-amd64", "6.1.0-28-amd64"} {
		os.WriteFile(filepath.Join(root, "boot/vmlinuz-"+v), []byte("k"+v), 0o644)
		os.WriteFile(filepath.Join(root, "boot/initrd.img-"+v), []byte("i"+v), 0o644)
	}
	base := filepath.Join(t.TempDir(), "image")
	if err := Baremetal(root, base); err != nil {
		t.Fatal(err)
	}
	k, _ := os.ReadFile(base + ".vmlinuz")
	i, _ := os.ReadFile(base + ".initrd")
	if string(k) != "k6.1.0-28-amd64" || string(i) != "i6.1.0-28-amd64" {
		t.Errorf("got %q %q", k, i)
	}
	if err := Baremetal(t.TempDir(), base); err == nil {
		t.Error("want an error without a kernel")
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
