# ubuntu-common: the distribution name.
export DISTRO_NAME=ubuntu
