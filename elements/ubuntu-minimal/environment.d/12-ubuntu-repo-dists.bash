# ubuntu-minimal: release, mirror, components and pockets of the image.
export DIB_RELEASE=${DIB_RELEASE:-noble}
if [ "${ARCH:-amd64}" = "amd64" ] || [ "${ARCH:-amd64}" = "i386" ]; then
    export DIB_DISTRIBUTION_MIRROR=${DIB_DISTRIBUTION_MIRROR:-http://archive.ubuntu.com/ubuntu}
else
    export DIB_DISTRIBUTION_MIRROR=${DIB_DISTRIBUTION_MIRROR:-http://ports.ubuntu.com/ubuntu-ports}
fi
export DIB_DEBIAN_COMPONENTS=${DIB_DEBIAN_COMPONENTS:-main,universe}
# Pockets listed in sources.list besides the release itself.
export DIB_UBUNTU_POCKETS=${DIB_UBUNTU_POCKETS:-updates security}
