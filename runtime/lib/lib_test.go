package lib

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// TestDibRunParts runs the embedded dib-run-parts on a phase directory and
// checks which scripts run, in which order, with environment.d sourced.
func TestDibRunParts(t *testing.T) {
	dir := t.TempDir()
	p, err := Write(dir, Options{SudoShim: true})
	if err != nil {
		t.Fatal(err)
	}
	hooks := filepath.Join(dir, "hooks")
	phase := filepath.Join(hooks, "install.d")
	envd := filepath.Join(hooks, "environment.d")
	for _, d := range []string{phase, envd} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, content string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(envd, "10-a.bash"), "export ORDER=a\n", 0o644)
	write(filepath.Join(envd, "20-b"), "export ORDER=\"$ORDER b\"\n", 0o644)
	for _, n := range []string{"50-x", "10-y", "100-z", "05-w"} {
		write(filepath.Join(phase, n), "#!/bin/sh\necho run "+n+" $ORDER\n", 0o755)
	}
	write(filepath.Join(phase, "20-noexec"), "#!/bin/sh\necho bad\n", 0o644)
	write(filepath.Join(phase, "30-dot.sh"), "#!/bin/sh\necho bad\n", 0o755)

	cmd := exec.Command(filepath.Join(p.Bin, "dib-run-parts"), phase)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var runs []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "run ") {
			runs = append(runs, l)
		}
	}
	want := []string{"run 05-w a b", "run 10-y a b", "run 50-x a b", "run 100-z a b"}
	if !reflect.DeepEqual(runs, want) {
		t.Errorf("runs %q, want %q\n%s", runs, want, out)
	}
	list, err := exec.Command(filepath.Join(p.Bin, "dib-run-parts"), "--list", phase).Output()
	if err != nil || string(list) != "05-w\n10-y\n50-x\n100-z\n" {
		t.Errorf("--list %q %v", list, err)
	}

	// A failing script stops the run.
	write(filepath.Join(phase, "60-fail"), "#!/bin/sh\nexit 7\n", 0o755)
	cmd = exec.Command(filepath.Join(p.Bin, "dib-run-parts"), phase)
	out, err = cmd.CombinedOutput()
	if err == nil || bytes.Contains(out, []byte("run 100-z")) {
		t.Errorf("did not stop at the failure: %v\n%s", err, out)
	}
}

// libRun sources $_LIB's files in bash and runs script with env.
func libRun(t *testing.T, lib, script string, env ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append([]string{"_LIB=" + lib, "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + t.TempDir()}, env...)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestLibFunctions runs DIB's lib functions that need no root, each with
// the behaviour of DIB's (lib/die, common-*, img-*, ramdisk-*).
func TestLibFunctions(t *testing.T) {
	p, err := Write(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range Sourced {
		if _, err := os.Stat(filepath.Join(p.Lib, n)); err != nil {
			t.Errorf("$_LIB lacks %s", n)
		}
	}
	if _, err := os.Stat(filepath.Join(p.Bin, "sudo")); err == nil {
		t.Error("sudo shim written without SudoShim")
	}
	tree := t.TempDir()
	mk := func(files ...string) string {
		root := filepath.Join(tree, strconv.Itoa(len(files))+"-"+filepath.Base(files[0]))
		for _, f := range files {
			name, target, link := strings.Cut(f, "->")
			path := filepath.Join(root, name)
			os.MkdirAll(filepath.Dir(path), 0o755)
			if link {
				os.Symlink(target, path)
			} else {
				os.WriteFile(path, nil, 0o644)
			}
		}
		return root
	}
	debian := mk("etc/debian_version", "boot/vmlinuz-6.1.0-9-amd64", "boot/vmlinuz-6.1.0-10-amd64", "boot/initrd.img-6.1.0-9-amd64", "boot/initrd.img-6.1.0-10-amd64")
	ubuntu := mk("etc/debian_version", "boot/vmlinuz-6.8.0-31-generic", "boot/vmlinuz-6.8.0-40-generic", "boot/initrd.img-6.8.0-31-generic", "boot/initrd.img-6.8.0-40-generic", "boot/vmlinuz-9.9-lowlatency")
	redhat := mk("etc/redhat-release", "boot/vmlinuz-5.14.0-70.el9.x86_64", "boot/vmlinuz-5.14.0-80.el9.x86_64+debug", "boot/initramfs-5.14.0-70.el9.x86_64.img")
	redhatNoInitrd := mk("etc/redhat-release", "boot/vmlinuz-5.14.0-70.el9.x86_64")
	suse := mk("etc/SuSE-release", "boot/vmlinuz-6.4.0-1", "boot/initrd-6.4.0-1", "boot/vmlinuz->vmlinuz-6.4.0-1", "boot/initrd->initrd-6.4.0-1")
	gentoo := mk("etc/gentoo-release", "boot/vmlinuz-6.6.1-gentoo", "boot/vmlinuz-6.6.9-gentoo", "boot/initramfs-6.6.9-gentoo.img")
	unknown := mk("etc/hostname")
	hooks := t.TempDir()
	elemA, elemB := filepath.Join(hooks, "elements/a"), filepath.Join(hooks, "elements/b")
	for _, f := range []string{elemA + "/install.d/10-a", elemB + "/install.d/20-b", elemA + "/element-deps", elemB + "/root.d/10-b", elemA + "/tests/ignored"} {
		os.MkdirAll(filepath.Dir(f), 0o755)
		os.WriteFile(f, []byte("#!/bin/bash\necho ran-$(basename $0)\necho IMAGE_BLOCK_DEVICE=/dev/loop9\n"), 0o755)
	}
	dup := filepath.Join(hooks, "elements/dup")
	os.MkdirAll(dup+"/install.d", 0o755)
	os.WriteFile(dup+"/install.d/10-a", nil, 0o755)
	arrayFn := "function get_image_element_array { echo \"[a]=" + elemA + " [b]=" + elemB + "\"; }; "

	cases := []struct {
		name, script string
		env          []string
		want         []string // substrings of the output
		fails        bool
	}{
		{"die keeps the failing status", `source $_LIB/die; ( false || die "broken thing" ); echo "die=$?"; ( true; die "zero" ); echo "die=$?"; declare -F die; bash -c 'declare -F die'`,
			nil, []string{"broken thing\ndie=1", "zero\ndie=0", "die\ndie"}, false},
		{"common-defaults", `ARCH= ; unset DIB_CHECKSUM DIB_NO_TMPFS DIB_MIN_TMPFS DIB_OFFLINE; source $_LIB/common-defaults; echo "arch=$ARCH sum=$DIB_CHECKSUM notmpfs=$DIB_NO_TMPFS min=$DIB_MIN_TMPFS ep=$ELEMENTS_PATH"; echo "PATH=$PATH"`,
			[]string{"_BASE_ELEMENT_DIR=/base", "ELEMENTS_PATH=/mine"}, []string{"sum=0 notmpfs=0 min=2 ep=/mine:/base", "/usr/local/sbin"}, false},
		{"common-defaults keeps values", `source $_LIB/common-defaults; echo "arch=$ARCH sum=$DIB_CHECKSUM"`,
			[]string{"ARCH=arm64", "DIB_CHECKSUM=1"}, []string{"arch=arm64 sum=1"}, false},
		{"img-defaults", `source $_LIB/img-defaults; echo "$FS_TYPE $IMAGE_TYPE $IMAGE_NAME $DIB_MIN_TMPFS"`, nil, []string{"ext4 qcow2 image 2"}, false},
		{"ramdisk-defaults", `source $_LIB/ramdisk-defaults; echo "$DIB_NO_TMPFS $DIB_MIN_TMPFS $RAMDISK_ELEMENT m=$MODULE_ROOT u=$LIB_UDEV_ROOT"`,
			[]string{"DIB_MODULE_ROOT=/mods"}, []string{"1 1 ramdisk m=/mods u="}, false},
		{"tmpfs_check refuses with DIB_NO_TMPFS", `source $_LIB/common-functions; tmpfs_check && echo yes || echo no`, []string{"DIB_NO_TMPFS=1"}, []string{"no"}, false},
		{"tmpfs_check wants twice the minimum", `source $_LIB/common-functions; tmpfs_check || echo no`, []string{"DIB_NO_TMPFS=0", "DIB_MIN_TMPFS=100000"},
			[]string{"WARNING: Not enough RAM to use tmpfs for build. Using /tmp.", "< 200000G)", "no"}, false},
		{"arg_to_elements", `source $_LIB/common-functions; arg_to_elements vm debian-minimal; echo "[$IMAGE_ELEMENT]"`, []string{"ARCH=amd64"},
			[]string{"Building elements: base vm debian-minimal block-device-mbr", "[base vm debian-minimal block-device-mbr]"}, false},
		{"arg_to_elements ramdisk arm64", `source $_LIB/common-functions; arg_to_elements vm block-device-gpt; echo "[$IMAGE_ELEMENT]"; IMAGE_ELEMENT=; arg_to_elements vm x`,
			[]string{"ARCH=arm64", "SKIP_BASE=1", "IS_RAMDISK=1", "RAMDISK_ELEMENT=deploy"}, []string{"[deploy vm block-device-gpt", "Building elements: deploy vm x block-device-efi"}, false},
		{"check_break", `source $_LIB/common-functions; check_break before-install echo SHELL-HERE; check_break after-error echo NOT-HERE`,
			[]string{"break=after-install,before-install"}, []string{"At stage before-install", "SHELL-HERE", "Resuming"}, false},
		{"generate_hooks and run_d", arrayFn + `source $_LIB/common-functions; export TMP_HOOKS_PATH=$PWD/hooks; run_d install; ls $TMP_HOOKS_PATH; ls $TMP_HOOKS_PATH/install.d`,
			nil, []string{"Copying hooks for a", "Running hooks from", "ran-10-a", "ran-20-b", "element-deps", "root.d"}, false},
		{"duplicated hook", "function get_image_element_array { echo \"[a]=" + elemA + " [dup]=" + dup + "\"; }; " + `source $_LIB/common-functions; export TMP_HOOKS_PATH=$PWD/hooks; generate_hooks`,
			nil, []string{"There is a duplicated hook in your elements"}, true},
		{"eval_run_d", arrayFn + `source $_LIB/common-functions; export TMP_HOOKS_PATH=$PWD/hooks; eval_run_d install "IMAGE_BLOCK_DEVICE="; echo "dev=$IMAGE_BLOCK_DEVICE"`,
			nil, []string{"dev=/dev/loop9"}, false},
		{"block_device_create_config_file from an element", arrayFn + `source $_LIB/common-functions; mkdir -p x; echo "- gpt: {}" > ` + elemB + `/block-device-amd64.yaml; block_device_create_config_file c.yaml; cat c.yaml; rm ` + elemB + `/block-device-amd64.yaml`,
			[]string{"ARCH=amd64"}, []string{"Using block-device config: " + elemB + "/block-device-amd64.yaml", "- gpt: {}"}, false},
		{"block_device_create_config_file default", `source $_LIB/common-functions; block_device_create_config_file c.yaml; cat c.yaml`,
			nil, []string{"Using default block-device fallback config", "name: mkfs_root", "fsck-passno: 1"}, false},
		{"block_device_create_config_file inline", `source $_LIB/common-functions; block_device_create_config_file c.yaml; cat c.yaml`,
			[]string{"DIB_BLOCK_DEVICE_CONFIG=- local_loop: {name: image0}"}, []string{"User specified block-device config", "- local_loop: {name: image0}"}, false},
		{"finish_image", `source $_LIB/common-functions; echo old > out.qcow2; echo oldsum > out.qcow2.sha256; echo new > tmp.img; OUT_IMAGE_PATH=tmp.img finish_image out.qcow2; cat out.qcow2; ls; cat out.qcow2.md5`,
			[]string{"DIB_CHECKSUM=1"}, []string{"Old image found. Renaming it to out-", "Image file out.qcow2 created...", "new\n", ".qcow2.sha256", "  out.qcow2"}, false},
		{"save_image overwrites", `source $_LIB/common-functions; echo old > out.raw; echo new > tmp.img; OUT_IMAGE_PATH=tmp.img save_image out.raw; ls`,
			[]string{"OVERWRITE_OLD_IMAGE=1", "DIB_CHECKSUM=sha256"}, []string{"out.raw\nout.raw.sha256\n"}, false},
		{"select_boot_kernel_initrd debian", `source $_LIB/img-functions; select_boot_kernel_initrd ` + debian + `; echo "$KERNEL $RAMDISK $BOOTDIR"`,
			nil, []string{"vmlinuz-6.1.0-10-amd64 initrd.img-6.1.0-10-amd64 " + debian + "/boot"}, false},
		{"select_boot_kernel_initrd ubuntu generic", `source $_LIB/img-functions; select_boot_kernel_initrd ` + ubuntu + `; echo "$KERNEL $RAMDISK"`,
			nil, []string{"vmlinuz-6.8.0-40-generic initrd.img-6.8.0-40-generic"}, false},
		{"select_boot_kernel_initrd patterns", `source $_LIB/img-functions; select_boot_kernel_initrd ` + ubuntu + `; echo "$KERNEL $RAMDISK"`,
			[]string{"DIB_BAREMETAL_KERNEL_PATTERN=vmlinuz-*lowlatency", "DIB_BAREMETAL_INITRD_PATTERN=initrd.img-6.8.0-31*"}, []string{"vmlinuz-9.9-lowlatency initrd.img-6.8.0-31-generic"}, false},
		{"select_boot_kernel_initrd redhat", `source $_LIB/img-functions; select_boot_kernel_initrd ` + redhat + `; echo "$KERNEL $RAMDISK $KERNEL_VERSION"`,
			nil, []string{"vmlinuz-5.14.0-70.el9.x86_64 initramfs-5.14.0-70.el9.x86_64.img 5.14.0-70.el9.x86_64"}, false},
		{"select_boot_kernel_initrd redhat without initramfs", `source $_LIB/img-functions; select_boot_kernel_initrd ` + redhatNoInitrd,
			nil, []string{"Can't find an initramfs for the 5.14.0-70.el9.x86_64 version of the kernel."}, true},
		{"select_boot_kernel_initrd suse", `source $_LIB/img-functions; select_boot_kernel_initrd ` + suse + `; echo "$KERNEL $RAMDISK"`,
			nil, []string{"vmlinuz-6.4.0-1 initrd-6.4.0-1"}, false},
		{"select_boot_kernel_initrd gentoo", `source $_LIB/img-functions; select_boot_kernel_initrd ` + gentoo + `; echo "$KERNEL $RAMDISK"`,
			nil, []string{"vmlinuz-6.6.9-gentoo initramfs-6.6.9-gentoo.img"}, false},
		{"select_boot_kernel_initrd unknown", `source $_LIB/img-functions; select_boot_kernel_initrd ` + unknown,
			nil, []string{"ERROR: Unable to detect operating system"}, true},
		{"fullpath", `source $_LIB/ramdisk-functions; cd /tmp; fullpath a/b; fullpath /x/y`, nil, []string{"/tmp/a/b\n/x/y"}, false},
		{"copy_required_libs", `source $_LIB/ramdisk-functions; export TMP_MOUNT_PATH=$PWD/r; mkdir -p r/lib; copy_required_libs /bin/bash; ls r/lib`,
			nil, []string{"libc.so.6"}, false},
		{"populate_busybox", `source $_LIB/ramdisk-functions; export TMP_MOUNT_PATH=$PWD/r; mkdir -p r/bin; touch r/bin/ls; printf '#!/bin/sh\necho ls; echo cat\n' > bb; chmod +x bb; BUSYBOX=$PWD/bb populate_busybox; readlink r/bin/cat`,
			nil, []string{"skip ls", "busybox"}, false},
		{"finalise_image", `source $_LIB/ramdisk-functions; export TMP_MOUNT_PATH=$PWD/r TMP_IMAGE_PATH=$PWD/img; mkdir -p r/etc; echo hi > r/etc/x; finalise_image; zcat img | cpio -it 2>/dev/null || zcat img | head -c 6`,
			nil, []string{"Finalising image"}, false},
		{"unmount_dir of a plain directory", `source $_LIB/common-functions; mkdir -p d/e; unmount_dir d; unmount_dir nope`, nil, []string{"*** nope is not a directory"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := libRun(t, p.Lib, c.script, c.env...)
			if (err != nil) != c.fails {
				t.Errorf("error %v (want failure: %v)\n%s", err, c.fails, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("missing %q in:\n%s", w, out)
				}
			}
		})
	}
}

func TestSudoShim(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the shim only runs commands as root")
	}
	dir := t.TempDir()
	p, err := Write(dir, Options{SudoShim: true})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
		fail bool
	}{
		{[]string{"echo", "hi"}, "hi\n", false},
		{[]string{"-E", "-H", "echo", "x"}, "x\n", false},
		{[]string{"-u", "root", "sh", "-c", "echo $FOO"}, "\n", false},
		{[]string{"FOO=bar", "sh", "-c", "echo $FOO"}, "bar\n", false},
		{[]string{"-u", "nobody", "true"}, "", true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, err := exec.Command(filepath.Join(p.Bin, "sudo"), tt.args...).Output()
			if (err != nil) != tt.fail || (!tt.fail && string(out) != tt.want) {
				t.Errorf("out %q err %v", out, err)
			}
		})
	}
}
