package element

import "slices"

// externalElements are elements people name in diskimage-builder commands
// that no diskimage-builder release has shipped, with where they come from.
var externalElements = map[string]string{
	"ironic-python-agent-ramdisk": "ironic-python-agent-builder's element (pip install ironic-python-agent-builder; " +
		"its elements directory is ironic_python_agent_builder/dib in that package): add that directory to elements-path",
	"centos7": "diskimage-builder's CentOS 7 element, removed with CentOS 7's end of life: use centos-minimal " +
		"(release 9-stream or 10-stream) or centos with its cloud image",
	"centos7-minimal": "diskimage-builder's minimal CentOS 7 element, removed with CentOS 7's end of life: use centos-minimal",
}

// dibElements are the element names of diskimage-builder's own tree
// (diskimage_builder/elements, 3.x), so a missing one can be told apart
// from a typo: dib ships only some of them.
var dibElements = []string{
	"almalinux-container", "apt-conf", "apt-preferences", "apt-sources", "autoupdates", "baremetal", "base",
	"block-device-efi", "block-device-efi-4k", "block-device-efi-lvm", "block-device-gpt", "block-device-mbr",
	"bootloader", "cache-url", "centos", "centos-minimal", "cleanup-kernel-initrd", "cloud-init",
	"cloud-init-datasources", "cloud-init-disable-resizefs", "cloud-init-growpart", "cloud-init-nocloud",
	"containerfile", "debian", "debian-minimal", "debian-systemd", "debian-upstart", "debootstrap",
	"deploy-baremetal", "deploy-kexec", "deploy-targetcli", "deploy-tgtadm", "devuser", "dhcp-all-interfaces",
	"dib-init-system", "dib-python", "dib-run-parts", "disable-nouveau", "disable-selinux", "dkms", "docker",
	"dpkg", "dracut-ramdisk", "dracut-regenerate", "dynamic-login", "element-manifest", "elrepo",
	"enable-serial-console", "ensure-venv", "epel", "fail2ban", "fedora", "fedora-container", "fedora-minimal",
	"fips", "gentoo", "growroot", "growvols", "grub2", "hpdsa", "hwburnin", "hwdiscovery", "ibft-interfaces",
	"ilo", "install-bin", "install-static", "install-types", "iscsi-boot", "iso", "journal-to-console",
	"keylime-agent", "local-config", "lvm", "manifests", "mellanox", "modprobe", "modprobe-blacklist",
	"nm-dhcp-ib-interfaces", "oat-client", "openeuler-minimal", "openssh-server", "openstack-ci-mirrors",
	"opensuse", "opensuse-minimal", "package-installs", "pip-and-virtualenv", "pip-cache", "pkg-map", "posix",
	"proliant-tools", "pypi", "python-brickclient", "python-stow-versions", "ramdisk", "ramdisk-base",
	"rax-nova-agent", "redhat-common", "replace-partition", "replace-partition-redhat", "rhel", "rhel-common",
	"rocky-container", "rpm-distro", "runtime-ssh-host-keys", "select-boot-kernel-initrd",
	"selinux-fixfiles-restore", "selinux-permissive", "simple-init", "source-repositories", "stable-interface-names",
	"svc-map", "sysctl", "sysprep", "tpm-emulator", "uboot", "ubuntu", "ubuntu-common", "ubuntu-minimal",
	"ubuntu-signed", "ubuntu-systemd-container", "vm", "yum", "yum-minimal", "zipl", "zypper", "zypper-minimal",
}

// notShipped explains where a missing element comes from when it is not a
// typo: another project's element, a removed one, or a diskimage-builder
// element dib does not ship. "" when dib knows nothing of the name.
func notShipped(name string) string {
	if s := externalElements[name]; s != "" {
		return "; dib does not ship " + name + ": it is " + s
	}
	if slices.Contains(dibElements, name) {
		return "; " + name + " is a diskimage-builder element that dib does not ship: add a directory holding it " +
			"(e.g. diskimage-builder's diskimage_builder/elements) to elements-path"
	}
	return ""
}
