#!/bin/bash
# cmdline hook of the dib ramdisk: the ramdisk never mounts a root, but
# dracut wants one it accepts.
# shellcheck disable=SC2034
root=/dev/zero
# shellcheck disable=SC2034
rootok=1
