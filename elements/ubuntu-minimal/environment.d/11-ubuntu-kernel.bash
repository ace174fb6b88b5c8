# ubuntu-minimal: which kernel flavour package-installs.yaml installs
# (linux-image-generic, linux-image-virtual, linux-image-kvm, linux-image-hwe).
export DIB_UBUNTU_KERNEL=${DIB_UBUNTU_KERNEL:-linux-image-generic}
