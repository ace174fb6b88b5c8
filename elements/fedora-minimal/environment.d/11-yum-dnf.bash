# fedora-minimal: dnf replaced yum in Fedora 22.
if [ "${DIB_RELEASE}" = rawhide ] || [ "${DIB_RELEASE}" -ge 22 ] 2> /dev/null; then
    export YUM=dnf
else
    export YUM=yum
fi
