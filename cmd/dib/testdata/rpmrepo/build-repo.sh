#!/bin/bash
# build-repo.sh OUT: a local RPM repository for dib's RPM-family tests.
#
# No CentOS, Rocky or Fedora mirror is reachable from dib's build machines,
# so the tests build their own repository: rpmbuild packages named as
# CentOS Stream 9's, and createrepo_c. What they hold:
#
#   * real programs, copied from this Debian host with the shared libraries
#     they load (ldd): bash, GNU coreutils/sed/grep/findutils/mawk/diffutils,
#     busybox for the other applets (wget among them), and rpm with its
#     configuration and an /etc/rpm macro putting the database in
#     /var/lib/rpm (Debian's rpm keeps it in ~/.rpmdb);
#   * signatures: every package is signed with a key made for the run and
#     shipped as centos-gpg-keys' RPM-GPG-KEY-centosofficial;
#   * the CentOS layout and files the build touches: filesystem (merged
#     /usr), setup (passwd, group, hosts), the release, repos and gpg-keys
#     packages, a kernel with a BLS entry, the SELinux targeted policy's
#     file_contexts, /etc/dnf/dnf.conf;
#   * stand-ins, recording their arguments in /var/lib/dib-test/*.log (not /var/log,
#     which the build empties), for
#     what cannot run here: dnf inside the image (stand-in.dnf: installs
#     from the repository over HTTP with the real rpm), dracut, setfiles,
#     grub2-mkconfig, systemctl;
#   * empty packages for every other name the elements ask for.
#
# The dnf on the build host that bootstraps the tree is the real one; only
# dnf inside the image is a stand-in.
set -eu
set -o pipefail

out=${1:?usage: build-repo.sh OUT}
here=$(cd "$(dirname "$0")" && pwd)
kver=5.14.0-999.dibtest.el9.x86_64
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
# The packages are signed with a key made here, shipped as CentOS's key
# (centos-gpg-keys): dnf on the host checks them with it. gpg's agent is
# stopped on the way out.
export GNUPGHOME=$work/gnupg
mkdir -m 0700 "$GNUPGHOME"
trap 'gpgconf --kill all 2> /dev/null || true; rm -rf "$work"' EXIT
keyname="dib test repository <dib-test@example.invalid>"
gpg --batch --quiet --passphrase '' --quick-gen-key "$keyname" rsa2048 sign never 2> /dev/null
stage=$work/stage
mkdir -p "$stage"

# files: PACKAGE PATH… — the %files list of each package (paths in stage).
declare -A files
add() { # add PACKAGE PATH…
    local p=$1
    shift
    files[$p]+=" $*"
}
put() { # put PACKAGE PATH MODE < content
    local p=$1 path=$2 mode=$3
    mkdir -p "$stage$(dirname "$path")"
    cat > "$stage$path"
    chmod "$mode" "$stage$path"
    add "$p" "$path"
}
host() { # host PACKAGE HOSTFILE [DEST] — copy a host file (following links)
    local p=$1 src=$2 dst=${3:-}
    [ -n "$dst" ] || dst=$src
    case "$dst" in /bin/* | /sbin/* | /lib/*) dst=/usr$dst ;; esac
    [ -e "$stage$dst" ] && return 0
    mkdir -p "$stage$(dirname "$dst")"
    rm -f "$stage$dst"
    cp -L "$src" "$stage$dst"
    add "$p" "$dst"
    libs+=("$src")
}
link() { # link PACKAGE TARGET PATH
    mkdir -p "$stage$(dirname "$3")"
    ln -sfn "$2" "$stage$3"
    add "$1" "$3"
}

# filesystem: CentOS's merged /usr.
for d in etc etc/default etc/sysconfig etc/pki/rpm-gpg etc/yum.repos.d etc/rpm root home boot boot/loader/entries dev proc sys run tmp var var/tmp \
    var/log var/lib var/cache mnt opt srv media usr usr/bin usr/sbin usr/lib usr/lib64 usr/libexec usr/share usr/local \
    usr/local/bin usr/local/sbin; do
    mkdir -p "$stage/$d"
    add filesystem "%dir /$d"
done
chmod 1777 "$stage/tmp" "$stage/var/tmp"
chmod 0555 "$stage/proc" "$stage/sys"
chmod 0550 "$stage/root"
link filesystem usr/bin /bin
link filesystem usr/sbin /sbin
link filesystem usr/lib /lib
link filesystem usr/lib64 /lib64
link filesystem ../run /var/run

put setup /etc/passwd 0644 <<'X'
root:x:0:0:root:/root:/bin/bash
nobody:x:65534:65534:Kernel Overflow User:/:/sbin/nologin
X
put setup /etc/group 0644 <<'X'
root:x:0:
wheel:x:10:
nobody:x:65534:
X
put setup /etc/shadow 0000 <<'X'
root:!!:19000:0:99999:7:::
nobody:!!:19000::::::
X
put setup /etc/hosts 0644 <<'X'
127.0.0.1   localhost localhost.localdomain
::1         localhost localhost.localdomain
X
put setup /etc/profile 0644 <<'X'
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin
X
gpg --batch --armor --export "$keyname" > "$work/key.asc"
put centos-gpg-keys /etc/pki/rpm-gpg/RPM-GPG-KEY-centosofficial 0644 < "$work/key.asc"
put centos-stream-release /etc/os-release 0644 <<'X'
NAME="CentOS Stream"
VERSION="9"
ID="centos"
ID_LIKE="rhel fedora"
VERSION_ID="9"
PLATFORM_ID="platform:el9"
PRETTY_NAME="CentOS Stream 9 (dib test repository)"
X
put centos-stream-release /etc/centos-release 0644 <<< "CentOS Stream release 9"
link centos-stream-release centos-release /etc/redhat-release
link centos-stream-release centos-release /etc/system-release
# The distribution's own repo file: set aside during the build, back after.
put centos-stream-repos /etc/yum.repos.d/centos.repo 0644 <<'X'
[baseos]
name=CentOS Stream $releasever - BaseOS
metalink=https://mirrors.centos.org/metalink?repo=centos-baseos-$stream&arch=$basearch
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-centosofficial
gpgcheck=1
enabled=1
X

# Fedora's release packages, for fedora-minimal.
put fedora-release-common /etc/fedora-release 0644 <<< "Fedora release 41 (dib test repository)"
put fedora-release-cloud /usr/lib/os-release.d/os-release-cloud 0644 <<'X'
NAME="Fedora Linux"
VERSION="41 (Cloud Edition)"
ID=fedora
VERSION_ID=41
X
put fedora-gpg-keys /etc/pki/rpm-gpg/RPM-GPG-KEY-fedora-41-x86_64 0644 < "$work/key.asc"
put fedora-repos /etc/yum.repos.d/fedora.repo 0644 <<'X'
[fedora]
name=Fedora $releasever - $basearch
metalink=https://mirrors.fedoraproject.org/metalink?repo=fedora-$releasever&arch=$basearch
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-fedora-$releasever-$basearch
gpgcheck=1
enabled=1
X

# Real programs from the host.
libs=()
host bash /bin/bash
link bash bash /usr/bin/sh
host coreutils /bin/busybox /usr/libexec/dib-test/busybox
while read -r applet; do
    name=$(basename "$applet")
    case "$name" in *[][]*) continue ;; esac
    case "$name" in sh | bash | ash | hush | rpm | rpm2cpio | setfiles | restorecon | dnf | yum | systemctl | \
        dracut | passwd | init | linuxrc | halt | reboot | poweroff) continue ;; esac
    dst=/usr/bin/$name
    case "$applet" in sbin/* | usr/sbin/*) dst=/usr/sbin/$name ;; esac
    [ -e "$stage$dst" ] && continue
    link coreutils /usr/libexec/dib-test/busybox "$dst"
done < <(/bin/busybox --list-full)
for pkg in coreutils sed grep findutils mawk diffutils; do
    dpkg -L "$pkg" 2> /dev/null | while read -r f; do
        case "$f" in */bin/\[) ;; */bin/* | */sbin/*) [ -f "$f" ] && [ -x "$f" ] && echo "$f" ;; esac
    done
done > "$work/gnu"
while read -r f; do
    d=$f
    case "$d" in /bin/* | /sbin/*) d=/usr$d ;; esac
    rm -f "$stage$d"
    host coreutils "$f" "$d"
done < "$work/gnu"
rm -f "$stage/usr/bin/awk"
link coreutils mawk /usr/bin/awk
for f in /usr/bin/rpm /usr/bin/rpmdb /usr/bin/rpmkeys /usr/bin/rpmquery; do
    [ -e "$f" ] && host rpm "$f"
done
while read -r f; do
    [ -f "$f" ] && host rpm "$f"
done < <(dpkg -L rpm-common rpm | grep -E '^/usr/lib/rpm/(macros|rpmrc|rpmpopt|platform/x86_64)')
put rpm /etc/rpm/macros.dib-dbpath 0644 <<< "%_dbpath /var/lib/rpm"

# The shared libraries of every program copied, at the host's paths.
for f in "${libs[@]}"; do
    { ldd "$f" 2> /dev/null || true; } | awk '/=>/ {print $3} /^\t\/lib/ {print $1}'
done | sort -u | while read -r lib; do
    if [ -z "$lib" ] || [ ! -e "$lib" ]; then continue; fi
    real=$(readlink -f "$lib")
    echo "$real $(basename "$lib")"
done | sort -u > "$work/libs"
while read -r real name; do
    dir=$(dirname "$real")
    case "$dir" in /lib/* | /lib) dir=/usr$dir ;; esac
    mkdir -p "$stage$dir"
    if [ ! -e "$stage$dir/$(basename "$real")" ]; then
        cp "$real" "$stage$dir/"
        add glibc "$dir/$(basename "$real")"
    fi
    if [ "$name" != "$(basename "$real")" ] && [ ! -e "$stage$dir/$name" ]; then
        ln -s "$(basename "$real")" "$stage$dir/$name"
        add glibc "$dir/$name"
    fi
done < "$work/libs"
link glibc ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 /usr/lib64/ld-linux-x86-64.so.2

# The package manager in the image: a stand-in over HTTP and the real rpm.
put dnf /usr/bin/dnf 0755 < "$here/stand-in.dnf"
link dnf dnf /usr/bin/yum
put dnf /etc/dnf/dnf.conf 0644 <<'X'
[main]
gpgcheck=1
installonly_limit=3
clean_requirements_on_remove=True
best=True
skip_if_unavailable=False
X

# The kernel, its BLS entry (kernel-install writes one in CentOS 9) and
# the stand-ins the boot path calls.
put kernel "/boot/vmlinuz-$kver" 0755 <<< "dib test kernel $kver: not bootable"
# CentOS's kernel-core makes it in %posttrans (kernel-install, dracut).
put kernel "/boot/initramfs-$kver.img" 0600 <<< "dib test initramfs of the kernel package"
mkdir -p "$stage/usr/lib/modules/$kver"
add kernel "%dir /usr/lib/modules/$kver"
put kernel "/boot/loader/entries/0123456789abcdef0123456789abcdef-$kver.conf" 0644 <<X
title CentOS Stream ($kver) 9
version $kver
linux /boot/vmlinuz-$kver
initrd /boot/initramfs-$kver.img
options root=UUID=00000000-0000-0000-0000-000000000000 ro crashkernel=auto
grub_users \$grub_users
grub_arg --unrestricted
grub_class centos
X
standin() { # standin PACKAGE PATH — a program that logs its arguments
    put "$1" "$2" 0755 <<X
#!/bin/bash
# dib test repository: stand-in for $(basename "$2"), which cannot run here.
mkdir -p /var/lib/dib-test
echo "$(basename "$2") \$*" >> /var/lib/dib-test/$(basename "$2").log
$(cat)
X
}
standin dracut /usr/bin/dracut <<'X'
# dracut [-f] [IMAGE [KVER]]: writes IMAGE.
args=()
for a in "$@"; do case "$a" in -*) ;; *) args+=("$a") ;; esac; done
[ ${#args[@]} -gt 0 ] || exit 0
echo "dib test initramfs for ${args[1]:-?}" > "${args[0]}"
X
mkdir -p "$stage/boot/grub2"
add grub2-tools "%dir /boot/grub2"
standin grub2-tools /usr/sbin/grub2-mkconfig <<'X'
# grub2-mkconfig -o FILE
[ "${1:-}" = -o ] && echo "# dib test grub2-mkconfig" > "$2"
X
standin policycoreutils /usr/sbin/setfiles <<'X'
# Records whether the tree's own /proc is mounted (it must not be).
if [ -e /proc/self ]; then echo "setfiles: /proc is mounted" >> /var/lib/dib-test/setfiles.log; fi
X
standin systemd /usr/bin/systemctl <<< ""
put systemd /usr/lib/systemd/systemd 0755 <<< "dib test systemd"
mkdir -p "$stage/etc/systemd/system"
add systemd "%dir /etc/systemd/system"
put selinux-policy-targeted /etc/selinux/config 0644 <<'X'
SELINUX=enforcing
SELINUXTYPE=targeted
X
put selinux-policy-targeted /etc/selinux/targeted/contexts/files/file_contexts 0644 <<'X'
/.*	system_u:object_r:default_t:s0
X

# Every other name the elements ask for: an empty package.
while read -r name; do
    [ -n "$name" ] && [ -z "${files[$name]+set}" ] && files[$name]=""
done < "$here/empty-packages.txt"

# Dependencies as CentOS has them where the build relies on them: dnf
# --installroot of the package manager must bring the shell, the C library
# and rpm along.
declare -A requires=(
    [dnf]="rpm bash coreutils glibc filesystem setup"
    [rpm]="glibc bash"
    [bash]="glibc filesystem"
    [coreutils]="glibc filesystem"
    [glibc]="filesystem"
    [kernel]="dracut"
    [selinux-policy-targeted]="selinux-policy policycoreutils"
)

# One spec, one subpackage per name.
spec=$work/dib-test.spec
{
    echo "Name: dib-test-repository"
    echo "Version: 1"
    echo "Release: 1.el9"
    echo "Summary: dib test repository"
    echo "License: Apache-2.0"
    echo "AutoReqProv: no"
    echo "%description"
    echo "dib test repository"
    echo "%install"
    echo "cp -a $stage/. %{buildroot}/"
    for p in $(printf '%s\n' "${!files[@]}" | sort); do
        echo "%package -n $p"
        echo "Summary: dib test stand-in for $p"
        echo "AutoReqProv: no"
        [ "$p" = util-linux ] && echo "Provides: util-linux-ng"
        for r in ${requires[$p]:-}; do echo "Requires: $r"; done
        echo "%description -n $p"
        echo "dib test stand-in for $p"
        echo "%files -n $p"
        for f in ${files[$p]}; do
            case "$f" in %dir) printf '%s ' "$f" ;; *) echo "$f" ;; esac
        done
        echo
    done
} > "$spec"
rpmbuild --quiet -bb --target x86_64 \
    --define "_topdir $work/top" \
    --define "_build_id_links none" \
    --define "debug_package %{nil}" \
    --define "__os_install_post %{nil}" \
    --define "_binary_payload w1.gzdio" \
    --define "_unpackaged_files_terminate_build 0" \
    "$spec" > "$work/rpmbuild.log" 2>&1 || { cat "$work/rpmbuild.log" >&2; exit 1; }
rm -rf "$out/Packages" "$out/repodata"
mkdir -p "$out/Packages"
find "$work/top/RPMS" -name '*.rpm' -exec mv {} "$out/Packages/" \;
rpmsign --define "_gpg_name $keyname" --define "__gpg $(command -v gpg)" --addsign "$out"/Packages/*.rpm > "$work/rpmsign.log" 2>&1 ||
    { cat "$work/rpmsign.log" >&2; exit 1; }
createrepo_c --quiet "$out"
# The in-image stand-in dnf reads this index: NAME FILE.
for f in "$out"/Packages/*.rpm; do
    echo "$(rpm -qp --qf '%{NAME}' "$f" 2>/dev/null) Packages/$(basename "$f")"
done | sort > "$out/dib-test-index"
echo "util-linux-ng $(awk '$1 == "util-linux" {print $2}' "$out/dib-test-index")" >> "$out/dib-test-index"
