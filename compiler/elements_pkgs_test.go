package compiler

import (
	"slices"
	"strings"
	"testing"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/elements"
)

// installed lists the packages the plan's phases install, by phase.
func installed(p *plan.Plan) map[string][]string {
	out := map[string][]string{}
	for _, s := range p.Steps {
		if s.Phase == nil {
			continue
		}
		for _, pk := range s.Phase.Packages {
			if !pk.Uninstall {
				out[s.Phase.Name] = append(out[s.Phase.Name], pk.Mapped...)
			}
		}
	}
	return out
}

// The package-only built-in elements map their generic names per family
// (ensure-venv, cloud-init-growpart): Debian's names on Debian, the Red
// Hat family's on CentOS, nothing where the map says "".
func TestBuiltinPackageMaps(t *testing.T) {
	for _, c := range []struct {
		distro, element, want string
	}{
		{"debian-minimal", "ensure-venv", "python3-venv"},
		{"centos-minimal", "ensure-venv", "python3"},
		{"debian-minimal", "cloud-init-growpart", "cloud-guest-utils"},
		{"centos-minimal", "cloud-init-growpart", "cloud-utils-growpart"},
	} {
		p := mustCompile(t, "Dibfile", "name: n\ndistro: "+c.distro+"\nelements: ["+c.element+"]\noutputs: [tar]\n", elements.FS(), nil)
		if got := installed(p)["install.d"]; !slices.Contains(got, c.want) {
			t.Errorf("%s on %s: install.d packages %q lack %s", c.element, c.distro, got, c.want)
		}
	}
}

// The plan of the package-only elements: grub2's arch-specific names,
// posix's utilities mapped to Debian packages (built-ins dropped), the
// debian element's cloud packages, disable-nouveau's data files in the hook
// tree.
func TestBuiltinElementPlans(t *testing.T) {
	for _, c := range []struct {
		distro, element, arch string
		want                  []string
		absent                []string
	}{
		{"debian-minimal", "grub2", "amd64", []string{"grub-efi-amd64-signed", "shim-signed", "grub-pc-bin"}, []string{"grub-efi-arm64-signed"}},
		{"debian-minimal", "grub2", "arm64", []string{"grub-efi-arm64-signed", "grub-efi-arm64"}, []string{"grub-pc-bin"}},
		{"centos-minimal", "grub2", "amd64", []string{"grub2", "shim", "grub2-efi-x64"}, nil},
		{"debian-minimal", "posix", "amd64", []string{"gawk", "bc", "at", "binutils"}, []string{"alias", "cd"}},
		{"debian", "", "amd64", []string{"cloud-init", "cloud-initramfs-growroot", "isc-dhcp-client", "cron", "file"}, nil},
		{"debian-minimal", "dkms", "amd64", []string{"dkms"}, nil},
	} {
		els := "[]"
		if c.element != "" {
			els = "[" + c.element + "]"
		}
		p := mustCompile(t, "Dibfile", "name: n\ndistro: "+c.distro+"\narch: "+c.arch+"\nelements: "+els+"\noutputs: [tar]\n", elements.FS(), nil)
		var all []string
		for _, l := range installed(p) {
			all = append(all, l...)
		}
		for _, w := range c.want {
			if !slices.Contains(all, w) {
				t.Errorf("%s %s on %s/%s: packages %q lack %s", c.distro, c.element, c.distro, c.arch, all, w)
			}
		}
		for _, a := range c.absent {
			if slices.Contains(all, a) {
				t.Errorf("%s on %s/%s: %s installed", c.element, c.distro, c.arch, a)
			}
		}
	}
	p := mustCompile(t, "Dibfile", "name: n\ndistro: debian-minimal\nelements: [disable-nouveau]\noutputs: [tar]\n", elements.FS(), nil)
	for _, want := range []string{"modprobe.d/disable-nouveau.conf", "dracut.conf.d/disable-nouveau.conf"} {
		if !slices.ContainsFunc(p.Files, func(f plan.File) bool { return f.Path == want && f.Element == "disable-nouveau" }) {
			t.Errorf("hook tree lacks %s", want)
		}
	}
}

// The operating-system elements whose own root.d makes the tree (ubuntu
// from the cloud image, docker, containerfile): the bootstrap step runs
// nothing (provider none, available), says where the tree comes from, and
// the root.d hook is in the plan.
func TestRootDTreeElements(t *testing.T) {
	for _, c := range []struct {
		src, hook, reason string
		pkgs              []string
		env               map[string]string
	}{
		{"distro: ubuntu\n", "root.d/10-cache-ubuntu-tarball", "cloud image", []string{"linux-image-generic"},
			map[string]string{"DISTRO_NAME": "ubuntu", "DIB_RELEASE": "noble", "DIB_CLOUD_INIT_DATASOURCES": "Ec2", "DIB_DISTRIBUTION_MIRROR": ""}},
		{"distro: ubuntu\nrelease: jammy\nenv: {DIB_CLOUD_INIT_DATASOURCES: 'ConfigDrive, OpenStack'}\n", "root.d/10-cache-ubuntu-tarball", "cloud image", nil,
			map[string]string{"DIB_RELEASE": "jammy", "DIB_CLOUD_INIT_DATASOURCES": "ConfigDrive, OpenStack"}},
		{"elements: [docker, dpkg]\nenv: {DISTRO_NAME: debian, DIB_RELEASE: bookworm}\n", "root.d/08-docker", "DIB_DOCKER_IMAGE", nil,
			map[string]string{"DISTRO_NAME": "debian"}},
		{"elements: [containerfile]\nenv: {DIB_RELEASE: '9'}\n", "root.d/08-containerfile", "container file", nil, nil},
	} {
		p := mustCompile(t, "Dibfile", "name: n\n"+c.src+"outputs: [tar]\n", elements.FS(), nil)
		var boot *plan.Bootstrap
		for _, s := range p.Steps {
			if s.Bootstrap != nil {
				boot = s.Bootstrap
			}
		}
		if boot == nil || boot.Provider != "none" || !boot.Available || !strings.Contains(boot.Reason, c.reason) || len(boot.Include) > 0 {
			t.Errorf("%q: bootstrap %+v, want provider none, available, reason about %q", c.src, boot, c.reason)
		}
		if !slices.ContainsFunc(p.Files, func(f plan.File) bool { return f.Path == c.hook }) {
			t.Errorf("%q: no %s in the plan", c.src, c.hook)
		}
		for _, w := range c.pkgs {
			if got := installed(p)["install.d"]; !slices.Contains(got, w) {
				t.Errorf("%q: install.d packages %q lack %s", c.src, got, w)
			}
		}
		env := map[string]string{}
		for _, e := range p.Env {
			env[e.Name] = e.Value
		}
		for k, v := range c.env { // v "": unset or empty
			if got, ok := env[k]; got != v || (!ok && v != "") {
				t.Errorf("%q: %s=%q (set %v), want %q", c.src, k, got, ok, v)
			}
		}
	}
}

// The bootloader step carries the bootloader element's options: the
// serial console off, the timer check kept, a separate /boot's label.
func TestBootloaderStepOptions(t *testing.T) {
	step := func(env string) *plan.Bootloader {
		p := mustCompile(t, "Dibfile", "name: n\ndistro: debian-minimal\nelements: [vm]\noutputs: [raw]\n"+env, elements.FS(), nil)
		for _, s := range p.Steps {
			if s.Bootloader != nil {
				return s.Bootloader
			}
		}
		t.Fatalf("no bootloader step (%q)", env)
		return nil
	}
	if bl := step(""); !bl.Serial || bl.SerialConsole != "ttyS0,115200" || bl.TimerCheck || bl.Cmdline != "nofb nomodeset gfxpayload=text" {
		t.Errorf("defaults: %+v", bl)
	}
	bl := step("env: {DIB_BOOTLOADER_USE_SERIAL_CONSOLE: 'False', DIB_NO_TIMER_CHECK: 'False', DIB_BOOT_LABEL: bootfs, DIB_BOOTLOADER_SERIAL_CONSOLE: ''}\n")
	if bl.Serial || !bl.TimerCheck || bl.Cmdline != "nofb nomodeset gfxpayload=text boot=LABEL=bootfs" || bl.SerialConsole != "ttyS0,115200" {
		t.Errorf("options: %+v", bl)
	}
}

// pip-and-virtualenv's plan by install type and family: packages for the
// package type, headers and the get-pip.py source for the source type;
// CentOS defaults to packages and refuses a source install.
func TestPipAndVirtualenvPlan(t *testing.T) {
	for _, c := range []struct {
		distro, itype string
		want, absent  []string
	}{
		{"debian-minimal", "package", []string{"python3-pip", "python3-virtualenv", "python3-venv"}, []string{"python3-dev", "python-pip"}},
		{"debian-minimal", "source", []string{"python3-dev", "python3-venv"}, []string{"python3-pip"}},
		{"centos-minimal", "", []string{"python3-pip", "python3-virtualenv"}, []string{"python3-devel"}},
	} {
		env := ""
		if c.itype != "" {
			env = "env: {DIB_INSTALLTYPE_pip_and_virtualenv: " + c.itype + "}\n"
		}
		p := mustCompile(t, "Dibfile", "name: n\ndistro: "+c.distro+"\nelements: [pip-and-virtualenv]\noutputs: [tar]\n"+env, elements.FS(), nil)
		var all []string
		for _, l := range installed(p) {
			all = append(all, l...)
		}
		for _, w := range c.want {
			if !slices.Contains(all, w) {
				t.Errorf("%s %s: packages %q lack %s", c.distro, c.itype, all, w)
			}
		}
		for _, a := range c.absent {
			if slices.Contains(all, a) {
				t.Errorf("%s %s: %s installed", c.distro, c.itype, a)
			}
		}
		if got := slices.ContainsFunc(p.Files, func(f plan.File) bool {
			return f.Path == "install.d/04-install-pip" || f.Path == "install.d/pip-and-virtualenv-source-install/04-install-pip"
		}); !got {
			t.Errorf("%s %s: the source install script is not in the hook tree", c.distro, c.itype)
		}
	}
	_, ds := compileSrc(t, "Dibfile", "name: n\ndistro: centos-minimal\nelements: [pip-and-virtualenv]\noutputs: [tar]\nenv: {DIB_INSTALLTYPE_pip_and_virtualenv: source}\n", elements.FS(), nil)
	if !ds.HasErrors() || !strings.Contains(ds.Error(), "no source install") {
		t.Errorf("centos source install: %v, want an error", ds)
	}
}
