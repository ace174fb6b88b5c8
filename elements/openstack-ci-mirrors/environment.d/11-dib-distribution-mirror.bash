# On an OpenStack CI node, build from the region's mirrors: their addresses
# are in /etc/ci/mirror_info.sh on the host (copied into the hooks as
# mirror_info.sh for the chroot phases). Anywhere else this does nothing.
if [ -f /etc/ci/mirror_info.sh ]; then
    dib_ci_mirror_info=/etc/ci/mirror_info.sh
elif [ -f /tmp/in_target.d/mirror_info.sh ]; then
    dib_ci_mirror_info=/tmp/in_target.d/mirror_info.sh
else
    dib_ci_mirror_info=
fi
if [ -n "$dib_ci_mirror_info" ]; then
    # The file is long and not ours: keep it out of a trace.
    dib_ci_xtrace=$(set +o | grep xtrace)
    set +o xtrace
    # shellcheck disable=SC1090
    source "$dib_ci_mirror_info"
    $dib_ci_xtrace
    case "${DISTRO_NAME:-}" in
        ubuntu)
            case "${ARCH:-}" in
                arm64) export DIB_DISTRIBUTION_MIRROR=${NODEPOOL_UBUNTU_PORTS_MIRROR:-} ;;
                amd64) export DIB_DISTRIBUTION_MIRROR=${NODEPOOL_UBUNTU_MIRROR:-} ;;
            esac
            export DIB_DEBOOTSTRAP_EXTRA_ARGS="${DIB_DEBOOTSTRAP_EXTRA_ARGS:-} --no-check-gpg"
            ;;
        debian)
            export DIB_DISTRIBUTION_MIRROR=${NODEPOOL_DEBIAN_MIRROR:-}
            export DIB_DEBOOTSTRAP_EXTRA_ARGS="${DIB_DEBOOTSTRAP_EXTRA_ARGS:-} --no-check-gpg"
            ;;
        centos)
            if [ "${DIB_RELEASE:-}" = 9-stream ]; then
                export DIB_DISTRIBUTION_MIRROR=${NODEPOOL_CENTOS_MIRROR:-}
                export DIB_EPEL_MIRROR=${NODEPOOL_EPEL_MIRROR:-}
            fi
            ;;
        opensuse) export DIB_DISTRIBUTION_MIRROR=${NODEPOOL_OPENSUSE_MIRROR:-} ;;
        rocky) export DIB_DISTRIBUTION_MIRROR='http://dl.rockylinux.org/$contentdir' ;;
    esac
    # The CI mirrors carry main only, and are unsigned.
    export DIB_DISTRIBUTION_MIRROR_UBUNTU_IGNORE="(universe|multiverse)"
    export DIB_DISTRIBUTION_MIRROR_UBUNTU_INSECURE=1
    if [ -d "${DIB_OS_CI_YUM_REPOS:-/nonexistent}" ]; then
        case "${DISTRO_NAME:-}" in
            centos) export DIB_YUM_MINIMAL_BOOTSTRAP_REPOS=$DIB_OS_CI_YUM_REPOS/centos-minimal/$DIB_RELEASE/yum.repos.d ;;
            openeuler) export DIB_YUM_MINIMAL_BOOTSTRAP_REPOS=$DIB_OS_CI_YUM_REPOS/openeuler-minimal/$DIB_RELEASE/yum.repos.d ;;
        esac
    fi
fi
unset dib_ci_mirror_info dib_ci_xtrace
