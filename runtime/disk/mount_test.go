package disk

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/runtime/mount"
)

func assembleFor(t *testing.T, l *layout.Layout) (string, Result) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "disk.raw")
	r, err := Assemble(context.Background(), Input{Layout: l, Tree: makeTree(t), Output: out, WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return out, r
}

func TestMountForFinalise(t *testing.T) {
	needHost(t, assemblyTools...)
	for _, c := range []struct {
		name string
		l    *layout.Layout
	}{{"efi", efiLayout(256)}, {"mbr-logical", mbrLogicalLayout()}} {
		t.Run(c.name, func(t *testing.T) {
			img, r := assembleFor(t, c.l)
			dir := t.TempDir()
			m, err := Mount(context.Background(), MountInput{Layout: c.l, Image: img, Volumes: r.Volumes, Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			// The whole disk and each mounted filesystem have a device
			// (IMAGE_BLOCK_DEVICE, IMAGE_BLOCK_DEVICES).
			if !strings.HasPrefix(m.Device, "/dev/loop") || m.Devices[c.l.Images[0].Node] != m.Device || !strings.HasPrefix(m.Devices["root"], "/dev/loop") {
				t.Errorf("devices %q %v", m.Device, m.Devices)
			}
			// finalise.d writes into the final filesystem.
			werr := os.WriteFile(filepath.Join(dir, "etc/finalised"), []byte("yes\n"), 0o644)
			_, serr := os.Stat(filepath.Join(dir, "usr/share/doc/dib/README"))
			if err := m.Unmount(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := m.Unmount(context.Background()); err != nil {
				t.Fatalf("second Unmount: %v", err)
			}
			if werr != nil || serr != nil {
				t.Fatal(werr, serr)
			}
			noLoopOrMount(t, img, dir)
			checkExt(t, img, volumeOf(t, r, "root").Offset, map[string]string{"/etc/finalised": "yes\n"})
			if c.name == "efi" && !kernelHas("vfat") && (len(m.Skipped) != 1 || !strings.Contains(m.Skipped[0], "mtools")) {
				t.Errorf("skipped: %v", m.Skipped)
			}
		})
	}
}

func TestMountFailureAtEveryStep(t *testing.T) {
	needHost(t, assemblyTools...)
	l := mbrLogicalLayout()
	img, r := assembleFor(t, l)
	for n := 1; ; n++ {
		dir := t.TempDir()
		m, err := Mount(context.Background(), MountInput{Layout: l, Image: img, Volumes: r.Volumes, Dir: dir, failAt: n})
		if err == nil {
			if err := m.Unmount(context.Background()); err != nil {
				t.Fatal(err)
			}
			noLoopOrMount(t, img, dir)
			t.Logf("%d steps", n-1)
			return
		}
		if !strings.Contains(err.Error(), errInjected.Error()) {
			t.Fatalf("step %d: %v", n, err)
		}
		if ms, _ := mount.Under(dir); len(ms) > 0 {
			t.Fatalf("step %d: mounts left %v", n, ms)
		}
		noLoopOrMount(t, img, dir)
		if n > 50 {
			t.Fatal("no end")
		}
	}
}
