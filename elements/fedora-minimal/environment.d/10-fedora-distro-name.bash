# fedora-minimal: the distribution and its release (DIB's default, 32, is
# long out of support: give the Dibfile a release).
export DISTRO_NAME=fedora
export DIB_RELEASE=${DIB_RELEASE:-32}
export EFI_BOOT_DIR="EFI/fedora"
