package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dibuild/dib/internal/fixture"
	"github.com/dibuild/dib/internal/guestlock"
	"github.com/dibuild/dib/runtime/disk"
	"github.com/dibuild/dib/runtime/ns/nstest"
	"github.com/dibuild/dib/runtime/sde"
)

// TestMain runs the package's tests in a private mount namespace when they
// run as root, so the end-to-end build cannot leave a mount behind.
func TestMain(m *testing.M) {
	// The test binary is dib itself for tests that must kill a build
	// process (TestKilledBuildsCleaned).
	if os.Getenv("DIB_TEST_RUN_DIB") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	// The test binary is a launcher for tests that measure a command's
	// peak RSS (TestHostileCorpus): see measureLauncher.
	if os.Getenv(measureEnv) != "" {
		os.Exit(measureLauncher(os.Getenv(measureEnv), os.Args[1:]))
	}
	nstest.MainThen(m, func() {
		cleanups.Lock()
		defer cleanups.Unlock()
		for _, c := range cleanups.fs {
			c()
		}
	})
}

// cleanups remove what tests share (the VM build, the dib binary), after
// the last test.
var cleanups struct {
	sync.Mutex
	fs []func()
}

// afterAll removes dir after the package's last test.
func afterAll(dir string) {
	cleanups.Lock()
	defer cleanups.Unlock()
	cleanups.fs = append(cleanups.fs, func() { os.RemoveAll(dir) })
}

// requireE2E skips the long end-to-end tests unless asked for: as root with
// DIB_REQUIRE_INTEGRATION=1 (CI) or DIB_E2E=1.
func requireE2E(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end build skipped with -short")
	}
	if os.Getenv("DIB_REQUIRE_INTEGRATION") != "1" && os.Getenv("DIB_E2E") != "1" {
		t.Skip("end-to-end build: set DIB_E2E=1 (CI sets DIB_REQUIRE_INTEGRATION=1)")
	}
	nstest.RequireRoot(t)
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestDebianVMEndToEnd builds the Debian VM example as the README says,
// checks the disk against the plan and boots it with SeaBIOS and OVMF to a
// login prompt, logging in as the devuser.
func TestDebianVMEndToEnd(t *testing.T) {
	requireE2E(t)
	out, p := sharedVMBuild(t)
	raw := filepath.Join(out, "debian-vm.raw")
	qcow := filepath.Join(out, "debian-vm.qcow2")
	for _, f := range []string{raw, qcow, raw + ".sha256", qcow + ".sha256", filepath.Join(out, "debian-vm.d", "dpkg_packages")} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("output missing: %v", err)
		}
	}
	// Nothing left mounted or attached.
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), "dib_") {
		t.Errorf("a build mount is left:\n%s", mi)
	}
	if l := sh(t, "losetup", "-a"); strings.Contains(l, "debian-vm") || strings.Contains(l, "dib_") {
		t.Errorf("a loop device is left: %s", l)
	}
	sh(t, "qemu-img", "check", qcow)
	sh(t, "sh", "-c", "cd "+out+" && sha256sum -c debian-vm.raw.sha256 debian-vm.qcow2.sha256")

	// The partition table is the plan's, byte for byte.
	var layoutTable struct {
		PartitionTable struct {
			Label      string `json:"label"`
			Partitions []struct {
				Start int64  `json:"start"`
				Size  int64  `json:"size"`
				Type  string `json:"type"`
				Name  string `json:"name"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal([]byte(sh(t, "sfdisk", "--json", raw)), &layoutTable); err != nil {
		t.Fatal(err)
	}
	var want []string
	var rootOff, rootSize, espOff, espSize int64
	for _, s := range p.Steps {
		if s.Partition == nil {
			continue
		}
		for _, pt := range s.Partition.Layout.PartitionTables[0].Partitions {
			want = append(want, strings.Join([]string{itoa(pt.Start), itoa(pt.Size), strings.ToUpper(pt.GPTType), pt.GPTName}, " "))
			switch pt.GPTName {
			case "root":
				rootOff, rootSize = pt.StartBytes, pt.SizeBytes
			case "ESP":
				espOff, espSize = pt.StartBytes, pt.SizeBytes
			}
		}
	}
	var got []string
	for _, pt := range layoutTable.PartitionTable.Partitions {
		got = append(got, strings.Join([]string{itoa(pt.Start), itoa(pt.Size), strings.ToUpper(pt.Type), pt.Name}, " "))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("sfdisk sees:\n%s\nthe plan says:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	sh(t, "sgdisk", "-v", raw)

	// Filesystems are clean.
	for _, fsck := range []struct {
		off, size int64
		argv      []string
	}{{rootOff, rootSize, []string{"e2fsck", "-fn"}}, {espOff, espSize, []string{"fsck.vfat", "-n"}}} {
		dev := strings.TrimSpace(sh(t, "losetup", "-r", "-f", "--show", "-o", itoa(fsck.off), "--sizelimit", itoa(fsck.size), raw))
		out, err := exec.Command(fsck.argv[0], append(fsck.argv[1:], dev)...).CombinedOutput()
		if fsck.argv[0] == "e2fsck" {
			// The image's fstab is the plan's (DIB's writefstab).
			fstab, ferr := exec.Command("debugfs", "-R", "cat /etc/fstab", dev).Output()
			var lines []string
			for _, s := range p.Steps {
				if s.Partition != nil {
					for _, f := range s.Partition.Layout.Fstab {
						lines = append(lines, f.Line)
					}
				}
			}
			if ferr != nil || !strings.Contains(string(fstab), strings.Join(lines, "\n")) {
				t.Errorf("/etc/fstab in the image (%v):\n%s\nwant the plan's lines:\n%s", ferr, fstab, strings.Join(lines, "\n"))
			}
		}
		sh(t, "losetup", "-d", dev)
		if err != nil {
			t.Errorf("%s: %v\n%s", strings.Join(fsck.argv, " "), err, out)
		}
	}

	// No filesystem keeps deleted data in its free blocks (the apt cache
	// never entered the tree; what finalise.d and cleanup.d deleted was
	// discarded).
	for _, s := range p.Steps {
		if s.Partition == nil {
			continue
		}
		starts := map[string]int64{}
		for _, pt := range s.Partition.Layout.PartitionTables[0].Partitions {
			starts[pt.Node] = pt.StartBytes
		}
		for _, fsys := range s.Partition.Layout.Filesystems {
			off, ok := starts[fsys.Base]
			if !ok {
				continue
			}
			free, err := disk.ScanFree(context.Background(), nil, raw, off, fsys.Type, false)
			if err != nil {
				t.Errorf("free space of %s: %v", fsys.Node, err)
				continue
			}
			t.Logf("%s (%s): %d bytes free, %d bytes of them non-zero", fsys.Node, fsys.Type, free.Free, free.NonZero)
			if free.NonZero != 0 {
				t.Errorf("%s: %d bytes of free blocks are not zero", fsys.Node, free.NonZero)
			}
		}
	}
	if fi, err := os.Stat(qcow); err == nil {
		t.Logf("qcow2: %d bytes", fi.Size())
	}

	// The build cache (issue [I]) keeps the finished image as the final
	// state: one more output (vhd) runs only that output and its
	// checksum, from the cached image, which holds what the cold build's
	// raw output holds.
	t.Setenv("DIB_CACHE_DIR", filepath.Join(out, "step-cache"))
	src, err := os.ReadFile(vmExample)
	if err != nil {
		t.Fatal(err)
	}
	more := filepath.Join(t.TempDir(), "debian-vm.yaml")
	if err := os.WriteFile(more, []byte(strings.Replace(string(src), "outputs:\n", "outputs:\n  - vhd\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runDib(t, "apply", "--json", "--no-color", "-O", out, more)
	if ran := stepsRun(t, stdout); code != 0 || !reflect.DeepEqual(ran, []string{"output vhd", "checksum debian-vm.vhd"}) {
		t.Errorf("outputs-only rebuild: exit %d, ran %q, want only the vhd and its checksum\n%s", code, ran, stderr)
	} else {
		sh(t, "qemu-img", "compare", "-f", "vpc", "-F", "raw", filepath.Join(out, "debian-vm.vhd"), raw)
	}

	// Boot both ways; TCG because nested KVM is not reliable on CI hosts.
	for _, boot := range [][]string{
		{"boot", "--no-kvm", "--timeout", "600s", "--login", "devuser:e2e-pass", "--command", "test -f /etc/debian_version", raw},
		{"boot", "--no-kvm", "--uefi", "--timeout", "600s", qcow},
	} {
		code, stdout, stderr := bootDib(t, boot...)
		t.Logf("%s: %s%s", strings.Join(boot[:3], " "), stdout, stderr)
		if code != 0 {
			t.Errorf("%s failed: exit %d", strings.Join(boot, " "), code)
		}
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestDebianTarballEndToEnd: the tarball example's image, built cold as
// an image of examples/multi-image.yaml beside its other image and one
// that fails (sharedMultiBuild, which TestParallelImagesEndToEnd checks),
// holds a working Debian (apt-get runs in the tar) with the devuser, and
// its docker archive is loadable (manifest with the target tag). Then the
// README's `dib apply examples/debian-tarball.yaml` finds every step of
// the example in the cache: the image's steps are the same in a
// multi-image Dibfile.
func TestDebianTarballEndToEnd(t *testing.T) {
	requireE2E(t)
	b := sharedMultiBuild(t)
	ended := ""
	for _, e := range parallelEvents(t, b.stdout) {
		if e.Image == "debian-rootfs" && (e.Type == "build-finished" || e.Type == "build-failed") {
			ended = e.Type
		}
	}
	if ended != "build-finished" {
		log, _ := os.ReadFile(filepath.Join(b.out, "debian-rootfs.log"))
		t.Fatalf("the example's image: %q\n%s\n%s", ended, b.stderr, log)
	}
	t.Setenv("DIB_CACHE_DIR", b.cache)
	cold, out := b.out, t.TempDir()
	tree := filepath.Join(out, "tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	sh(t, "tar", "-xf", filepath.Join(cold, "debian-rootfs.tar"), "-C", tree)
	if v := sh(t, "chroot", tree, "apt-get", "--version"); !strings.HasPrefix(v, "apt ") {
		t.Errorf("apt-get --version in the tarball: %q", v)
	}
	if pw, _ := os.ReadFile(filepath.Join(tree, "etc/passwd")); !strings.Contains(string(pw), "\ndev:") {
		t.Error("the devuser is not in the tarball's /etc/passwd")
	}
	for _, p := range []string{"proc", "sys"} {
		if ents, _ := os.ReadDir(filepath.Join(tree, p)); len(ents) != 0 {
			t.Errorf("/%s is not empty in the tarball", p)
		}
	}
	if _, err := os.Lstat(filepath.Join(tree, "var/cache/dib-initramfs")); err == nil {
		t.Error("the initramfs cache's mount point is in the tarball")
	}
	// SOURCE_DATE_EPOCH by default: the newest package's date. The
	// packages' files keep their times (apt-get's is its package's), what
	// the build wrote gets the epoch (/etc/passwd, the devuser's).
	if r, err := sde.FromPackages(tree); err != nil || r.Epoch == 0 {
		t.Errorf("no package date in the tarball: %+v, %v", r, err)
	} else {
		if mt := mtime(t, filepath.Join(tree, "etc/passwd")); mt != r.Epoch {
			t.Errorf("/etc/passwd (written by the build): mtime %d, want SOURCE_DATE_EPOCH %d (%s)", mt, r.Epoch, r.Why)
		}
		if mt := mtime(t, filepath.Join(tree, "usr/bin/apt-get")); mt == 0 || mt > r.Epoch {
			t.Errorf("/usr/bin/apt-get (apt's): mtime %d, want its package's, at most SOURCE_DATE_EPOCH %d", mt, r.Epoch)
		}
	}
	manifest := sh(t, "tar", "-xOf", filepath.Join(cold, "debian-rootfs.docker.tar"), "manifest.json")
	if !strings.Contains(manifest, `"dib/debian:bookworm"`) {
		t.Errorf("docker manifest: %s", manifest)
	}

	// The build cache (issue [I]): nothing changed, nothing runs; the
	// outputs are restored, the same bytes.
	coldTar := sha256File(t, filepath.Join(cold, "debian-rootfs.tar"))
	code, stdout, stderr := runDib(t, "apply", "--json", "--no-color", "-O", out, tarballExample)
	if ran := stepsRun(t, stdout); code != 0 || len(ran) != 0 {
		t.Fatalf("no-op rebuild: exit %d, ran %q\n%s", code, ran, stderr)
	}
	if got := sha256File(t, filepath.Join(out, "debian-rootfs.tar")); got != coldTar {
		t.Error("the tar restored from the cache differs from the cold build's")
	}
	// One more output (aci, an uncompressed tar of the tree under
	// rootfs/, cheap to write unlike tgz's gzip -9 of 874 MB): only it
	// runs, on the tree restored from the snapshot, and every entry in it
	// is the cold build's tar's, byte for byte.
	src, _ := os.ReadFile(tarballExample)
	more := filepath.Join(t.TempDir(), "debian-tarball.yaml")
	os.WriteFile(more, []byte(strings.Replace(string(src), "outputs:\n", "outputs:\n  - aci\n", 1)), 0o644)
	code, stdout, stderr = runDib(t, "apply", "--json", "--no-color", "-O", out, more)
	if ran := stepsRun(t, stdout); code != 0 || !reflect.DeepEqual(ran, []string{"output aci"}) {
		t.Fatalf("outputs-only rebuild: exit %d, ran %q, want only the aci\n%s", code, ran, stderr)
	}
	coldEntries := tarEntriesDigest(t, filepath.Join(cold, "debian-rootfs.tar"), ".")
	if got := tarEntriesDigest(t, filepath.Join(out, "debian-rootfs.aci"), "rootfs"); got != coldEntries {
		t.Errorf("the tree in the aci made from the cache's snapshot differs from the cold build's tar")
	}
	registryRoundTrip(t, tarballExample, more, coldTar, coldEntries)
}

func mtime(t *testing.T, name string) int64 {
	t.Helper()
	fi, err := os.Lstat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime().Unix()
}

// tarEntriesDigest is a digest of what a tar holds under top (its
// entries' names relative to top, types, link targets, modes, owners,
// times, device numbers, extended attributes and contents, in archive
// order); entries outside top are left out. A tar of a tree and an aci
// of the same tree (under rootfs/) give the same digest.
func tarEntriesDigest(t *testing.T, name, top string) string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rel := func(p string) (string, bool) {
		p = strings.TrimSuffix(p, "/")
		if p == top {
			return ".", true
		}
		r, ok := strings.CutPrefix(p, top+"/")
		return r, ok
	}
	h := sha256.New()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		p, ok := rel(hdr.Name)
		if !ok {
			continue
		}
		link := hdr.Linkname
		if hdr.Typeflag == tar.TypeLink {
			if link, ok = rel(link); !ok {
				t.Fatalf("%s: %s is a hard link out of %s", name, hdr.Name, top)
			}
		}
		var xattrs []string
		for k, v := range hdr.PAXRecords {
			if strings.HasPrefix(k, "SCHILY.xattr.") {
				xattrs = append(xattrs, k+"="+v)
			}
		}
		slices.Sort(xattrs)
		fmt.Fprintf(h, "%q %c %q %o %d %d %d %d %d %d %q\n", p, hdr.Typeflag, link, hdr.Mode, hdr.Uid, hdr.Gid,
			hdr.ModTime.UnixNano(), hdr.Size, hdr.Devmajor, hdr.Devminor, xattrs)
		if _, err := io.Copy(h, tr); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// stepsRun lists the titles of the steps a `dib apply --json` ran.
func stepsRun(t *testing.T, events string) []string {
	t.Helper()
	var ran []string
	for _, line := range strings.Split(strings.TrimSpace(events), "\n") {
		var e struct{ Type, Title string }
		if line == "" || json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		if e.Type == "step-started" {
			ran = append(ran, e.Title)
		}
	}
	return ran
}

// sha256File is fixture.SHA256File under the name this package's tests
// (the parallel e2e's among them) use.
func sha256File(t *testing.T, name string) string { return fixture.SHA256File(t, name) }

// TestRamdiskEndToEnd builds the ramdisk example (DIB's
// ramdisk-image-create): extra-data.d stages the ramdisk's /init pieces at
// $TMP_MOUNT_PATH, post-install.d builds the initramfs in the chroot,
// cleanup.d puts NAME.kernel and NAME.initramfs beside the outputs and
// the iso element makes NAME.iso of them. Then it builds the dracut
// example (ramdisk-image-create --ramdisk-element dracut-ramdisk; the
// bootstrap comes from the build cache of the first build). The busybox
// pair, its ISO with a BIOS and with UEFI, and the dracut pair with a
// network card boot in QEMU (TCG) to the ramdisk's login prompt; the
// dracut ramdisk must have had an address from dracut's DHCP first.
func TestRamdiskEndToEnd(t *testing.T) {
	requireE2E(t)
	out, kernel, initrd := ramdiskBuild(t, "ramdisk", "deploy-ramdisk")
	// The initramfs holds the /init assembled from ramdisk-base's scripts
	// (written by extra-data.d into $TMP_MOUNT_PATH) and the init.d fragments.
	files := readNewc(t, initrd)
	for _, want := range []string{"init", "etc/passwd", "etc/hostname"} {
		if _, ok := files[want]; !ok {
			t.Errorf("initramfs lacks %s", want)
		}
	}
	initText := files["init"]
	for _, want := range []string{"# --- init.d/10-start-base-system", "# --- init-end"} {
		if !strings.Contains(initText, want) {
			t.Errorf("/init lacks %q", want)
		}
	}
	// DIB's manifests beside the outputs, at DIB's paths and formats.
	manifests := filepath.Join(out, "deploy-ramdisk.d", "dib-manifests")
	var dpkg struct {
		Packages []struct{ Package, Arch, Version, Status string } `json:"packages"`
	}
	if b, err := os.ReadFile(filepath.Join(manifests, "dib-manifest-dpkg-deploy-ramdisk")); err != nil || json.Unmarshal(b, &dpkg) != nil || len(dpkg.Packages) < 50 {
		t.Errorf("DIB's dpkg manifest: %v (%d packages)", err, len(dpkg.Packages))
	}
	if b, err := os.ReadFile(filepath.Join(manifests, "dib_arguments")); err != nil || !strings.HasPrefix(string(b), "-a amd64 -o deploy-ramdisk ") {
		t.Errorf("dib_arguments %q %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(manifests, "dib_environment")); err != nil || !strings.Contains(string(b), `declare -x DIB_DEV_USER_USERNAME="deploy"`) {
		t.Errorf("dib_environment %q %v", b, err)
	}
	// No disk image: a ramdisk build writes none unless outputs asks; the
	// example asks for DIB's iso output.
	if m, _ := filepath.Glob(filepath.Join(out, "*.qcow2")); len(m) > 0 {
		t.Errorf("a ramdisk build wrote %v", m)
	}
	iso := filepath.Join(out, "deploy-ramdisk.iso")
	if fi, err := os.Stat(iso); err != nil || fi.Size() == 0 {
		t.Fatalf("the iso output is missing: %v", err)
	}
	// The ISO holds the build's kernel and initramfs, and boots them with
	// the example's DIB_DEPLOY_ISO_KERNEL_CMDLINE_ARGS.
	onISO := t.TempDir()
	if b, err := exec.Command("xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/vmlinuz", filepath.Join(onISO, "vmlinuz"),
		"-extract", "/isolinux/isolinux.cfg", filepath.Join(onISO, "isolinux.cfg")).CombinedOutput(); err != nil {
		t.Fatalf("xorriso -extract: %v\n%s", err, b)
	}
	if sha256File(t, filepath.Join(onISO, "vmlinuz")) != sha256File(t, kernel) {
		t.Errorf("the ISO's /vmlinuz is not deploy-ramdisk.kernel")
	}
	if b, _ := os.ReadFile(filepath.Join(onISO, "isolinux.cfg")); !strings.Contains(string(b), "boot_method=vmedia console=ttyS0,115200") {
		t.Errorf("isolinux.cfg lacks the example's kernel arguments:\n%s", b)
	}
	dracutInitrd := dracutRamdiskBuild(t)
	// Boot the kernel and initramfs, and the ISO from a CD-ROM drive with a
	// BIOS (isolinux) and with UEFI (shim, GRUB), each to the ramdisk's
	// login prompt; and the dracut ramdisk with a network card, whose
	// console must show the address dracut's DHCP got (QEMU's user
	// network) and the hostname the ramdisk set. TCG: nested KVM can hang
	// guests. The boots are independent and mostly wait (for DHCP on a VM
	// without a network), so they run side by side.
	boots := []struct {
		name    string
		args    []string
		console []string // lines the console must show
	}{
		// The VM has no network: do not wait 30 s for DHCP.
		{"kernel", []string{"boot", "--no-kvm", "--timeout", "600s", "--append", "dib_network_timeout=2", initrd}, nil},
		{"iso-bios", []string{"boot", "--no-kvm", "--timeout", "600s", "--cdrom", iso}, nil},
		{"iso-uefi", []string{"boot", "--no-kvm", "--timeout", "600s", "--uefi", "--cdrom", iso}, nil},
		{"dracut", []string{"boot", "--no-kvm", "--timeout", "600s", "--nic", "--console", dracutInitrd},
			[]string{"dracut: Starting dhcp for interface eth0", "ramdisk: network ready: eth0 10.0.2.15/24", "ramdisk: ramdisk ready", "ramdisk login:"}},
	}
	t.Run("boot", func(t *testing.T) {
		for _, b := range boots {
			t.Run(b.name, func(t *testing.T) {
				t.Parallel()
				code, stdout, stderr := bootDib(t, b.args...)
				t.Logf("%s: %s%s", strings.Join(b.args, " "), stdout, stderr)
				if code != 0 {
					t.Errorf("%s failed: exit %d", strings.Join(b.args, " "), code)
				}
				for _, want := range b.console {
					if !strings.Contains(stderr, want) {
						t.Errorf("the console lacks %q", want)
					}
				}
			})
		}
	})
}

// dracutRamdiskBuild builds examples/dracut-ramdisk.yaml (DIB's
// ramdisk-image-create --ramdisk-element dracut-ramdisk) with the build
// cache of the test's other builds, checks what dracut put in the
// initramfs and returns its path.
func dracutRamdiskBuild(t *testing.T) string {
	t.Helper()
	out, _, initrd := ramdiskBuild(t, "dracut-ramdisk", "dracut-ramdisk")
	files := readNewc(t, initrd)
	// The ramdisk's /init is the pre-mount hook of the deploy-ramdisk
	// module; the network is dracut's network-legacy (dhclient), not
	// systemd-networkd; the staged files and the console's getty are in.
	hook := "usr/lib/dracut/hooks/pre-mount/50-init.sh"
	for _, want := range []string{"# --- init.d/00-override-troubleshoot", "# --- init.d/40-check-network-ready", "# --- init-end"} {
		if !strings.Contains(files[hook], want) {
			t.Errorf("%s lacks %q", hook, want)
		}
	}
	for _, want := range []string{"usr/sbin/dhclient", "usr/sbin/dhclient-script", "usr/bin/pgrep", "usr/bin/hostname",
		"usr/lib/dib-ramdisk/init-func", "usr/local/sbin/getty", "etc/shadow"} {
		if _, ok := files[want]; !ok {
			t.Errorf("the dracut initramfs lacks %s", want)
		}
	}
	if got := files["etc/hostname"]; got != "ramdisk\n" {
		t.Errorf("etc/hostname %q", got)
	}
	for name := range files {
		if strings.Contains(name, "systemd-networkd") {
			t.Errorf("the dracut initramfs has %s", name)
		}
	}
	// dracut goes on after a module fails to install; the build log
	// must have no such failure.
	if b, err := os.ReadFile(filepath.Join(out, "dracut-ramdisk.log")); err != nil || strings.Contains(string(b), "dracut: FAILED") {
		t.Errorf("the build log has a dracut failure (%v):\n%s", err, b)
	}
	return initrd
}

// readNewc reads a gzip'd newc cpio archive: path → content (regular
// files), "" for other entries.
func readNewc(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	pad := func(n int) int { return (n + 3) &^ 3 }
	for off := 0; off+110 <= len(data); {
		h := data[off : off+110]
		if string(h[:6]) != "070701" {
			t.Fatalf("not a newc archive at offset %d", off)
		}
		field := func(i int) int {
			n, err := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return int(n)
		}
		mode, size, nameSize := field(1), field(6), field(11)
		name := strings.TrimSuffix(string(data[off+110:off+110+nameSize]), "\x00")
		body := pad(off + 110 + nameSize)
		if name == "TRAILER!!!" {
			break
		}
		name = strings.TrimPrefix(name, "./")
		if mode&0o170000 == 0o100000 {
			files[name] = string(data[body : body+size])
		} else {
			files[name] = ""
		}
		off = pad(body + size)
	}
	return files
}

// bootDib runs `dib boot ARGS` once one of the machine's guest slots is
// free (internal/guestlock): the boots of several test packages would
// otherwise share two cores among five emulated guests.
func bootDib(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	release, err := guestlock.Acquire(30 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	return runDib(t, args...)
}

// ramdiskBuild applies examples/EXAMPLE.yaml, whose image is named image,
// and returns its output directory and the paths of the kernel and the
// initramfs it wrote there.
func ramdiskBuild(t *testing.T, example, image string) (out, kernel, initrd string) {
	t.Helper()
	out = t.TempDir()
	start := time.Now()
	code, _, stderr := runDib(t, "apply", "--install-host-tools", "--no-color", "-O", out, "../../examples/"+example+".yaml")
	if code != 0 {
		t.Fatalf("apply %s: exit %d\n%s", example, code, stderr)
	}
	t.Logf("examples/%s.yaml built in %s", example, time.Since(start).Round(time.Second))
	kernel, initrd = filepath.Join(out, image+".kernel"), filepath.Join(out, image+".initramfs")
	for _, f := range []string{kernel, initrd} {
		if fi, err := os.Stat(f); err != nil || fi.Size() == 0 {
			t.Fatalf("output missing: %v", err)
		}
	}
	return out, kernel, initrd
}
