#!/bin/bash
# dhcp-all-interfaces.sh [INTERFACE]: at boot, give the named interface (or
# every interface but lo) a DHCP configuration when it has none, a real
# hardware address (or is a VLAN on one) and a link. IPv6: when rdisc6 is
# there and a router answers, stateful DHCPv6, stateless DHCPv6 or SLAAC as
# the router advertises. Writes ifupdown stanzas (/etc/network/interfaces),
# Red Hat ifcfg files (Ethernet, VLAN, InfiniBand) or SUSE ifcfg files,
# whichever the system uses.
if [ "${DIB_DEBUG_TRACE:-0}" -gt 0 ]; then set -x; fi
set -eu
set -o pipefail

PATH=$PATH:/sbin:/usr/sbin
# How many seconds to wait for a link and for a router (set at install).
wait_secs=@DIB_DHCP_TIMEOUT@
sys=/sys/class/net
eni=/etc/network/interfaces

if [ -d /etc/network ]; then
    conf=eni
elif [ -d /etc/sysconfig/network-scripts ]; then
    conf=redhat
    scripts=/etc/sysconfig/network-scripts
elif [ -d /etc/sysconfig/network ]; then
    conf=suse
    scripts=/etc/sysconfig/network
else
    echo "dhcp-all-interfaces: no ifupdown or ifcfg network configuration on this system" >&2
    exit 1
fi

# One run at a time edits /etc/network/interfaces: udev starts one per
# interface, and a hot-added interface must not be lost.
if [ "$conf" = eni ] && [ -z "${DHCP_ALL_INTERFACES_LOCKED:-}" ]; then
    touch "$eni"
    DHCP_ALL_INTERFACES_LOCKED=1 exec flock -x "$eni" "$0" "$@"
fi

sysval() { cat "$sys/$1/$2" 2>/dev/null || echo "${3:-}"; }

# A VLAN device NAME.ID copies its address from its parent (assign type 2,
# "stolen") whose own address is the hardware's (type 0).
is_vlan() {
    [ "$(sysval "$1" addr_assign_type)" = 2 ] || return 1
    local parent=${1%%.*}
    [ "$parent" != "$1" ] && [ "$(sysval "$parent" addr_assign_type)" = 0 ]
}

has_config() {
    case $conf in
        eni) [ -n "$(ifquery "$1" 2>/dev/null)" ] ;;
        *) [ -f "$scripts/ifcfg-$1" ] ;;
    esac
}

# DHCPv6 identity: a DUID-UUID (RFC 6355, type 4) from the machine id.
write_duid() {
    local dir=$1 iface=$2 hex
    mkdir -p "$dir"
    hex=$(sed 's/../\\x&/g' < /etc/machine-id)
    printf 'default-duid "\\x00\\x04%s";\n' "$hex" > "$dir/dhclient6--$iface.lease"
}

configure() {
    local iface=$1 v6=$2 managed=$3 other=$4 f
    case $conf in
    eni)
        printf 'auto %s\niface %s inet dhcp\n\n' "$iface" "$iface" >> "$eni"
        if [ "$v6" = yes ]; then
            write_duid /var/lib/dhcp "$iface"
            if [ "$managed" = Yes ]; then
                printf 'iface %s inet6 dhcp\n\n' "$iface" >> "$eni"
                echo "$iface: DHCPv6 (stateful)"
            elif [ "$other" = Yes ]; then
                printf 'iface %s inet6 auto\n\tdhcp 1\n\n' "$iface" >> "$eni"
                echo "$iface: DHCPv6 (stateless)"
            else
                printf 'iface %s inet6 auto\n\tdhcp 0\n\n' "$iface" >> "$eni"
                echo "$iface: IPv6 SLAAC"
            fi
        fi
        printf '\n' >> "$eni"
        ;;
    redhat)
        f=$scripts/ifcfg-$iface
        if [ "$(sysval "$iface" type)" = 32 ]; then
            # InfiniBand (ARPHRD_INFINIBAND): datagram mode, IPv4 only.
            printf '%s\n' "DEVICE=\"$iface\"" 'BOOTPROTO="dhcp"' 'ONBOOT="yes"' 'TYPE="InfiniBand"' \
                'CONNECTED_MODE="no"' 'DEFROUTE="yes"' 'PEERDNS="yes"' 'PEERROUTES="yes"' \
                'IPV4_FAILURE_FATAL="yes"' 'IPV6INIT="no"' > "$f"
        else
            if is_vlan "$iface"; then
                printf '%s\n' "DEVICE=\"$iface\"" 'BOOTPROTO="dhcp"' 'ONBOOT="yes"' 'VLAN="yes"' > "$f"
            else
                printf '%s\n' "DEVICE=\"$iface\"" 'BOOTPROTO="dhcp"' 'ONBOOT="yes"' 'TYPE="Ethernet"' > "$f"
            fi
            if [ "$v6" = yes ]; then
                write_duid /var/lib/dhclient "$iface"
                echo 'IPV6INIT="yes"' >> "$f"
                if [ "$managed" = Yes ]; then
                    printf '%s\n' 'IPV6_FORCE_ACCEPT_RA="yes"' 'DHCPV6C="yes"' >> "$f"
                    echo "$iface: DHCPv6 (stateful)"
                elif [ "$other" = Yes ]; then
                    printf '%s\n' 'IPV6_AUTOCONF="yes"' 'DHCPV6C="yes"' 'DHCPV6C_OPTIONS="-S"' >> "$f"
                    echo "$iface: DHCPv6 (stateless)"
                else
                    echo 'IPV6_AUTOCONF="yes"' >> "$f"
                    echo "$iface: IPv6 SLAAC"
                fi
            fi
        fi
        ;;
    suse)
        printf '%s\n' 'BOOTPROTO="dhcp"' 'STARTMODE="auto"' > "$scripts/ifcfg-$iface"
        ;;
    esac
    echo "$iface: configured for DHCP"
}

inspect() {
    local iface=$1 i link v6=no managed=No other=No ra rc
    if has_config "$iface"; then
        echo "$iface: already configured, skipped"
        return 0
    fi
    if ! is_vlan "$iface" && [ "$(sysval "$iface" addr_assign_type)" != 0 ]; then
        echo "$iface: generated MAC address (not a physical port), skipped"
        return 0
    fi
    link=0
    for ((i = wait_secs; i > 0; i--)); do
        ip link set dev "$iface" up > /dev/null 2>&1 || true
        link=$(sysval "$iface" carrier 0)
        [ "$link" != 1 ] || break
        sleep 1
    done
    if [ "$link" != 1 ]; then
        echo "$iface: no link, skipped"
        return 0
    fi
    if command -v rdisc6 > /dev/null; then
        for ((i = wait_secs; i > 0; i--)); do
            rc=0
            ra=$(rdisc6 --retry 3 --single "$iface" 2> /dev/null) || rc=$?
            if [ "$rc" = 0 ]; then
                v6=yes
                managed=$(sed -n 's/^ *Stateful address conf\.[^:]*: *//p' <<< "$ra")
                other=$(sed -n 's/^ *Stateful other conf\.[^:]*: *//p' <<< "$ra")
                break
            elif [ "$rc" = 2 ]; then
                break # no router answered
            fi
            sleep 1 # no link-local address yet
        done
    else
        echo "$iface: rdisc6 not available, IPv6 not configured"
    fi
    configure "$iface" "$v6" "$managed" "$other"
}

if [ $# -gt 0 ] && [ -n "$1" ]; then
    inspect "$1"
else
    for p in "$sys"/*; do
        [ -e "$p" ] || continue
        [ "${p##*/}" != lo ] || continue
        inspect "${p##*/}"
    done
fi
