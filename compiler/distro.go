package compiler

import "strings"

// distro is what dib knows of an operating-system element: DIB's
// DISTRO_NAME, its family (the pkg-map family), the release and mirror DIB
// defaults to, and how the root filesystem is made.
type distro struct {
	name       string // DISTRO_NAME
	family     string
	release    string // default DIB_RELEASE
	mirror     string // default DIB_DISTRIBUTION_MIRROR
	components []string
	keyring    string
	provider   string // "mmdebstrap", or the DIB element that would make the tree
	available  bool
}

// distros maps the OS elements to their facts. Families follow DIB's
// pkg-map: debian and ubuntu are "debian"; the RPM distributions are
// "redhat"; openSUSE is "suse".
var distros = map[string]distro{
	"debian":              {"debian", "debian", "bookworm", "http://deb.debian.org/debian", []string{"main"}, "/usr/share/keyrings/debian-archive-keyring.gpg", "mmdebstrap", true},
	"debian-minimal":      {"debian", "debian", "bookworm", "http://deb.debian.org/debian", []string{"main"}, "/usr/share/keyrings/debian-archive-keyring.gpg", "mmdebstrap", true},
	"ubuntu":              {"ubuntu", "debian", "noble", "http://archive.ubuntu.com/ubuntu", []string{"main", "universe"}, "/usr/share/keyrings/ubuntu-archive-keyring.gpg", "mmdebstrap", true},
	"ubuntu-minimal":      {"ubuntu", "debian", "noble", "http://archive.ubuntu.com/ubuntu", []string{"main", "universe"}, "/usr/share/keyrings/ubuntu-archive-keyring.gpg", "mmdebstrap", true},
	"centos":              {"centos", "redhat", "9-stream", "", nil, "", "centos cloud image", false},
	"centos-minimal":      {"centos", "redhat", "9-stream", "", nil, "", "yum-minimal", false},
	"fedora":              {"fedora", "redhat", "", "", nil, "", "fedora cloud image", false},
	"fedora-minimal":      {"fedora", "redhat", "", "", nil, "", "yum-minimal", false},
	"fedora-container":    {"fedora", "redhat", "", "", nil, "", "containerfile", false},
	"rhel":                {"rhel", "redhat", "9", "", nil, "", "rhel guest image", false},
	"rocky-container":     {"rocky", "redhat", "9", "", nil, "", "containerfile", false},
	"almalinux-container": {"almalinux", "redhat", "9", "", nil, "", "containerfile", false},
	"openeuler-minimal":   {"openeuler", "redhat", "", "", nil, "", "yum-minimal", false},
	"opensuse":            {"opensuse", "suse", "", "", nil, "", "opensuse cloud image", false},
	"opensuse-minimal":    {"opensuse", "suse", "", "", nil, "", "zypper-minimal", false},
	"gentoo":              {"gentoo", "gentoo", "", "", nil, "", "gentoo stage3", false},
	"containerfile":       {"", "", "", "", nil, "", "containerfile", false},
}

// lookupDistro returns the facts of an OS element. An element dib does not
// know (a user's own OS element) gets a family guessed from its name and no
// provider: its root.d is expected to make the tree, as under DIB.
func lookupDistro(element string) (distro, bool) {
	if d, ok := distros[element]; ok {
		return d, true
	}
	name := strings.TrimSuffix(strings.TrimSuffix(element, "-minimal"), "-container")
	return distro{name: name, family: name, provider: "element root.d"}, false
}
