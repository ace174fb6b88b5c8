package compiler

import (
	"slices"
	"testing"

	"github.com/dibuild/dib/compiler/plan"
	"github.com/dibuild/dib/elements"
)

// The plans of the hardware elements: mellanox's InfiniBand stack by its
// per-family names (apt and dnf patterns kept as DIB writes them, names
// another family has dropped), nm-dhcp-ib-interfaces' profile beside its
// hook, ubuntu-signed's signed kernel package on the cloud-image ubuntu.
func TestHardwareElementPlans(t *testing.T) {
	for _, c := range []struct {
		src    string
		want   []string
		absent []string
		files  []string
	}{
		{"distro: debian-minimal\nelements: [mellanox]\n",
			[]string{"dkms", "ibacm", "ibverbs-utils", "infiniband-diags", "libibmad.*", "libibumad*", "libibverbs*", "libmlx4*", "libmlx5*",
				"librdmacm*", "librdmacm-dev", "mstflint", "opensm", "perftest", "rdmacm-utils", "srptools", "vlan"},
			[]string{"rdma", "pciutils", "rpm-build", "libibcommon", "libibverbs-runtime", "librdmacm-runtime", ""},
			[]string{"install.d/65-mellanox", "install.d/mellanox-rules.udev", "init.d/01-mellanox", "udev.d/81-mellanox-drivers.rules"}},
		{"distro: centos-minimal\nelements: [mellanox]\n",
			[]string{"libibverbs.*", "librdmacm.*", "libmlx4.*", "libmlx5.*", "libibmad.*", "libibumad.*", "rdma", "pciutils", "opensm"},
			[]string{"dkms", "vlan", "rdmacm-utils", "ibacm", "rpm-build"},
			nil},
		{"distro: debian-minimal\nelements: [nm-dhcp-ib-interfaces]\n", nil, nil,
			[]string{"install.d/50-dhcp-ib-interfaces", "install.d/NetworkManager-system-connections-infiniband.nmconnection"}},
		{"distro: ubuntu\nelements: [ubuntu-signed]\n", []string{"linux-signed-image-generic", "linux-image-generic"}, nil,
			[]string{"post-install.d/90-get-signed-kernel"}},
	} {
		p := mustCompile(t, "Dibfile", "name: n\n"+c.src+"outputs: [tar]\n", elements.FS(), nil)
		var all []string
		for _, l := range installed(p) {
			all = append(all, l...)
		}
		for _, w := range c.want {
			if !slices.Contains(all, w) {
				t.Errorf("%q: packages %q lack %q", c.src, all, w)
			}
		}
		for _, a := range c.absent {
			if slices.Contains(all, a) {
				t.Errorf("%q: %q installed", c.src, a)
			}
		}
		for _, f := range c.files {
			if !slices.ContainsFunc(p.Files, func(pf plan.File) bool { return pf.Path == f }) {
				t.Errorf("%q: no %s in the hook tree", c.src, f)
			}
		}
	}
}
