#!/bin/bash
# dhcp-all-interfaces.sh [INTERFACE...]: give every network interface that
# has no configuration yet (or the ones named) a DHCP stanza in
# /etc/network/interfaces.d/. Run at boot, before networking starts.
set -eu
set -o pipefail

dir=/etc/network/interfaces.d
mkdir -p "$dir"

configured() {
    grep -qsE "^[[:space:]]*iface[[:space:]]+$1[[:space:]]" /etc/network/interfaces "$dir"/* 2>/dev/null
}

if [ $# -gt 0 ]; then
    ifaces=("$@")
else
    ifaces=()
    for p in /sys/class/net/*; do
        [ -e "$p/device" ] || continue
        ifaces+=("$(basename "$p")")
    done
fi

for i in "${ifaces[@]}"; do
    [ "$i" != lo ] || continue
    configured "$i" && continue
    printf 'auto %s\niface %s inet dhcp\n' "$i" "$i" > "$dir/$i"
    echo "dhcp-all-interfaces: $i configured for DHCP"
done
