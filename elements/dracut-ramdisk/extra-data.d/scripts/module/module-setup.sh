#!/bin/bash
# The dracut module of a dib ramdisk (80deploy-ramdisk): the command line
# hook makes dracut accept the missing root; the pre-mount hook is the
# ramdisk's /init (ramdisk-base's scripts/init, the init.d fragments,
# scripts/init-end), which never returns.
# Dracut sources this file with its own shell options.

check() {
    return 0
}

# The ramdisk talks to its deployer: dracut's network (its handler,
# network-legacy, is added by 99-build-dracut-ramdisk), brought up because
# the kernel command line has rd.neednet=1.
depends() {
    echo network
    return 0
}

install() {
    # shellcheck disable=SC2154
    inst_hook cmdline 80 "$moddir/deploy-cmdline.sh"
    inst_hook pre-mount 50 "$moddir/init.sh"
}
