# debian-minimal: the distribution and where its packages come from.
export DISTRO_NAME=debian
export DIB_RELEASE=${DIB_RELEASE:-bookworm}
export DIB_INIT_SYSTEM=${DIB_INIT_SYSTEM:-systemd}
export DIB_DISTRIBUTION_MIRROR=${DIB_DISTRIBUTION_MIRROR:-http://deb.debian.org/debian}
export DIB_DEBIAN_COMPONENTS=${DIB_DEBIAN_COMPONENTS:-main}
export DIB_DEBIAN_SECURITY_MIRROR=${DIB_DEBIAN_SECURITY_MIRROR:-http://security.debian.org/debian-security}
export DIB_DEBIAN_SECURITY_SUBPATH=${DIB_DEBIAN_SECURITY_SUBPATH:-${DIB_RELEASE}-security}
# The image's apt sources, in DIB's NAME:LINE format (one
# sources.list.d/NAME.list per line): the release, -updates and the
# security archive; testing and unstable get the release only.
_dib_components=${DIB_DEBIAN_COMPONENTS//,/ }
_dib_sources="default:deb ${DIB_DISTRIBUTION_MIRROR} ${DIB_RELEASE} ${_dib_components}"
case "$DIB_RELEASE" in
    testing | unstable | sid | experimental) ;;
    *)
        _dib_sources="${_dib_sources}
updates:deb ${DIB_DISTRIBUTION_MIRROR} ${DIB_RELEASE}-updates ${_dib_components}
security:deb ${DIB_DEBIAN_SECURITY_MIRROR} ${DIB_DEBIAN_SECURITY_SUBPATH} ${_dib_components}"
        ;;
esac
export DIB_APT_SOURCES_CONF=${DIB_APT_SOURCES_CONF:-${_dib_sources}}
unset _dib_components _dib_sources
