# centos-minimal: the distribution, release and mirror.
export DISTRO_NAME=centos
export DIB_RELEASE=${DIB_RELEASE:-9-stream}
if [ "$DIB_RELEASE" = "8-stream" ]; then
    export DIB_DISTRIBUTION_MIRROR=${DIB_DISTRIBUTION_MIRROR:-https://vault.centos.org}
else
    export DIB_DISTRIBUTION_MIRROR=${DIB_DISTRIBUTION_MIRROR:-https://mirror.stream.centos.org}
fi
export DIB_INIT_SYSTEM=${DIB_INIT_SYSTEM:-systemd}
