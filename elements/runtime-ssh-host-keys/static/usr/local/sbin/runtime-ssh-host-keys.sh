#!/bin/sh
# runtime-ssh-host-keys.sh: create the ssh host keys that are missing
# (the image ships none, so every machine gets its own).
set -eu
mkdir -p /etc/ssh
ssh-keygen -A
