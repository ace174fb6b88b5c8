#!/bin/bash
# Bring up the network interfaces the firmware's iSCSI Boot Firmware Table
# describes (iscsistart reads the table), so the deployed host can reach its
# iSCSI root or its deploy network.
set -eu
set -o pipefail

if ! iscsistart -v > /dev/null; then
    echo "init-ibft-interfaces: iscsistart is missing; iBFT interfaces are not configured" >&2
    exit 1
fi
if iscsistart -f > /dev/null 2>&1; then
    iscsistart -N
    udevadm settle
else
    echo "init-ibft-interfaces: no iBFT in this firmware; nothing to do"
fi
