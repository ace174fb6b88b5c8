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
	"ubuntu":              {"ubuntu", "debian", "noble", "", []string{"main", "universe"}, "/usr/share/keyrings/ubuntu-archive-keyring.gpg", "ubuntu cloud image", true},
	"ubuntu-minimal":      {"ubuntu", "debian", "noble", "http://archive.ubuntu.com/ubuntu", []string{"main", "universe"}, "/usr/share/keyrings/ubuntu-archive-keyring.gpg", "mmdebstrap", true},
	"centos":              {"centos", "redhat", "9-stream", "", nil, "", "centos cloud image", false},
	"centos-minimal":      {"centos", "redhat", "9-stream", "https://mirror.stream.centos.org", nil, "", "yum-minimal", true},
	"fedora":              {"fedora", "redhat", "", "", nil, "", "fedora cloud image", false},
	"fedora-minimal":      {"fedora", "redhat", "", "", nil, "", "yum-minimal", true},
	"fedora-container":    {"fedora", "redhat", "", "", nil, "", "containerfile", false},
	"rhel":                {"rhel", "redhat", "9", "", nil, "", "rhel guest image", false},
	"rocky-container":     {"rocky", "redhat", "9", "", nil, "", "containerfile", false},
	"almalinux-container": {"almalinux", "redhat", "9", "", nil, "", "containerfile", false},
	"openeuler-minimal":   {"openeuler", "redhat", "", "", nil, "", "yum-minimal", true},
	"opensuse":            {"opensuse", "suse", "", "", nil, "", "opensuse cloud image", false},
	"opensuse-minimal":    {"opensuse", "suse", "", "", nil, "", "zypper-minimal", false},
	"gentoo":              {"gentoo", "gentoo", "", "", nil, "", "gentoo stage3", false},
	"containerfile":       {"", "", "", "", nil, "", "containerfile", true},
	"docker":              {"", "", "", "", nil, "", "docker", true},
}

// treeFromRootD are the providers whose tree the operating-system
// element's own root.d hook makes (downloading a cloud image, exporting a
// container), with what the plan says of them.
var treeFromRootD = map[string]string{
	"ubuntu cloud image": "Ubuntu's cloud image (DIB_CLOUD_IMAGES, or DIB_LOCAL_IMAGE) unpacked into it",
	"docker":             "a container of DIB_DOCKER_IMAGE exported into it",
	"containerfile":      "a container file built with podman or docker and exported into it",
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
