package runtime

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/compiler/plan/layout"
	"github.com/dibuild/dib/runtime/mount"
	"github.com/dibuild/dib/runtime/shell"
	"github.com/dibuild/dib/runtime/stack"
	"github.com/dibuild/dib/runtime/workspace"
)

// TestPartitionMovesTheTreeIntoTheImage checks DIB's tree semantics around
// the disk step: the tree built at TMP_MOUNT_PATH (what extra-data.d and
// post-root.d wrote there included) is in the image mounted at the same
// path afterwards, built/ is gone, and the stack leaves nothing mounted.
func TestPartitionMovesTheTreeIntoTheImage(t *testing.T) {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range []string{"mke2fs", "losetup"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		if os.Getenv("DIB_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("needs %v", missing)
		}
		t.Skipf("needs %v", missing)
	}
	data, err := os.ReadFile("disk/testdata/layout-mbr.json")
	if err != nil {
		t.Fatal(err)
	}
	var l layout.Layout
	if err := json.Unmarshal(data, &l); err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	st := &stack.Stack{}
	ws, err := workspace.Create(st, workspace.Options{WorkDir: parent, NoTmpfs: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := st.Release(context.Background()); err != nil {
			t.Error(err)
		}
		if pts, _ := mount.Under(parent); len(pts) > 0 {
			t.Errorf("mounts left: %v", pts)
		}
	}()
	for name, content := range map[string]string{"etc/hostname": "t\n", "tmp/ramdisk-build/scripts/init": "#!/bin/sh\n", "etc/from-post-root": "yes\n"} {
		p := filepath.Join(ws.MountPath, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(ws.MountPath, "lost+found"), 0o700); err != nil {
		t.Fatal(err)
	}
	p := &plan.Plan{Image: plan.Image{Name: "img"}}
	b := &Build{Plan: p, Workspace: ws, Stack: st, Shell: &shell.Runner{Out: io.Discard}, Log: io.Discard}
	s := &plan.Step{Kind: plan.KindPartition, Partition: &plan.Partition{Layout: &l, SizeKnown: true, PreviewSize: l.Images[0].SizeBytes}}
	if err := b.diskImageSize(context.Background(), &plan.Step{Kind: plan.KindImageSize, ImageSize: &plan.ImageSize{Bytes: l.Images[0].SizeBytes}}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(b.ChrootEnv, " "); !strings.Contains(got, "DIB_IMAGE_SIZE=3145728") {
		t.Errorf("DIB_IMAGE_SIZE (KiB) not exported: %s", got)
	}
	// What Apply's setup wrote; the disk step adds the size and mkfs options.
	params := filepath.Join(ws.BuildDir, "block-device", "params.yaml")
	if err := os.MkdirAll(filepath.Dir(params), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(params, []byte("build-dir: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.Partition.Params.RootFSOpts = "-i 4096 -J size=64"
	if err := b.assembleDisk(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(params); string(got) != "build-dir: x\nimage-size: 3145728KiB\nroot-fs-opts: '-i 4096 -J size=64'\n" {
		t.Errorf("params.yaml %q", got)
	}
	if b.Tree() != ws.MountPath {
		t.Errorf("tree at %s, want TMP_MOUNT_PATH %s", b.Tree(), ws.MountPath)
	}
	if pts, _ := mount.Under(ws.MountPath); !slices.Contains(pts, ws.MountPath) {
		t.Error("the image is not mounted at TMP_MOUNT_PATH")
	}
	for _, name := range []string{"etc/hostname", "tmp/ramdisk-build/scripts/init", "etc/from-post-root", "etc/fstab"} {
		if _, err := os.Stat(filepath.Join(ws.MountPath, name)); err != nil {
			t.Errorf("not in the mounted image: %v", err)
		}
	}
	env := strings.Join(b.HostEnv, "\n")
	if !strings.Contains(env, "\nIMAGE_BLOCK_DEVICE=/dev/loop") || !strings.Contains(env, "\nIMAGE_BLOCK_DEVICES= [image0]=/dev/loop") {
		t.Errorf("IMAGE_BLOCK_DEVICE(S) not exported:\n%s", env)
	}
	if _, err := os.Stat(ws.BuiltPath); err == nil {
		t.Error("built/ left after the tree went into the image")
	}

	// The build cache keeps the finished image as the final state:
	// finishImage unmounts it and gives its path, again on a second
	// call; useImage hands such an image to the disk of another build,
	// for its outputs.
	img, err := b.finishImage(context.Background())
	if err != nil || img == "" {
		t.Fatalf("finishImage: %q, %v", img, err)
	}
	if pts, _ := mount.Under(ws.MountPath); len(pts) > 0 {
		t.Errorf("the finished image is still mounted: %v", pts)
	}
	if again, err := b.finishImage(context.Background()); err != nil || again != img {
		t.Errorf("finishImage again: %q, %v", again, err)
	}
	other := &Build{Plan: p, Workspace: ws, Stack: st, Shell: &shell.Runner{Out: io.Discard}, Log: io.Discard}
	if img, err := other.finishImage(context.Background()); err != nil || img != "" {
		t.Errorf("finishImage without a disk: %q, %v", img, err)
	}
	if err := other.useImage(img); err != nil || other.disk.raw != img || !other.disk.zeroed {
		t.Errorf("useImage: raw %q, zeroed %v, %v", other.disk.raw, other.disk.zeroed, err)
	}
}

// TestPartitionResolvesTheTemplate: when the size is measured at build
// time, the partition step lays the disk out from the plan's template at
// that size (layout.Resolve), without the compiler.
func TestPartitionResolvesTheTemplate(t *testing.T) {
	tpl := &layout.Template{
		Seed:  "img",
		Order: []string{"image0", "mkfs_root", "mount_mkfs_root"},
		Nodes: []layout.TemplateNode{
			{Name: "image0", Plugin: "local_loop", Kind: layout.KindLocalLoop, Loop: &layout.LoopTemplate{SectorSize: 512}},
			{Name: "mkfs_root", Plugin: "mkfs", Kind: layout.KindMkfs, Mkfs: &layout.MkfsTemplate{Base: "image0", Type: "ext4", Label: "cloudimg-rootfs", UUID: "u"}},
			{Name: "mount_mkfs_root", Plugin: "mount", Kind: layout.KindMount, Mount: &layout.MountTemplate{Base: "mkfs_root", MountPoint: "/"}},
		},
	}
	preview, ds := layout.Resolve(tpl, 1<<30)
	if ds.HasErrors() {
		t.Fatal(ds)
	}
	st := &stack.Stack{}
	defer st.Release(context.Background())
	ws, err := workspace.Create(st, workspace.Options{WorkDir: t.TempDir(), NoTmpfs: true})
	if err != nil {
		t.Fatal(err)
	}
	params := filepath.Join(ws.BuildDir, "block-device", "params.yaml")
	if err := os.MkdirAll(filepath.Dir(params), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(params, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b := &Build{Plan: &plan.Plan{Image: plan.Image{Name: "img"}}, Workspace: ws, Stack: st,
		Shell: &shell.Runner{Out: io.Discard}, Log: io.Discard, Options: Options{DryRun: true}}
	b.disk.size = 3 << 20
	s := &plan.Step{Kind: plan.KindPartition, Partition: &plan.Partition{Layout: preview, PreviewSize: 1 << 30, Template: tpl}}
	if err := b.assembleDisk(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if got := b.disk.layout.Images[0].SizeBytes; got != 3<<20 {
		t.Errorf("image of %d bytes, want the measured %d", got, 3<<20)
	}
	if got, _ := os.ReadFile(params); string(got) != "image-size: 3072KiB\n" {
		t.Errorf("params.yaml %q", got)
	}
	b.disk.size = 1000 // not a multiple of the sector size
	if err := b.assembleDisk(context.Background(), s); err == nil || !strings.Contains(err.Error(), "sector size") {
		t.Errorf("a 1000-byte image: err = %v", err)
	}
}
