package element

import (
	"strings"
	"testing"
)

func TestNotShipped(t *testing.T) {
	for name, want := range map[string]string{
		"ironic-python-agent-ramdisk": "ironic-python-agent-builder",
		"centos7":                     "removed with CentOS 7's end of life",
		"grub2":                       "grub2 is a diskimage-builder element that dib does not ship",
		"iscsi-boot":                  "iscsi-boot is a diskimage-builder element",
		"my-own-element":              "",
	} {
		got := notShipped(name)
		if (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("notShipped(%q) = %q, want it to say %q", name, got, want)
		}
	}
}
