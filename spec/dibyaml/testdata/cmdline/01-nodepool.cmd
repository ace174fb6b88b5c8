# nodepool-builder (nodepool/builder.py): os.environ plus the diskimage's
# env-vars, ELEMENTS_PATH from elements-dir, and this command line.
HOME=/var/lib/nodepool
PATH=/usr/local/bin:/usr/bin:/bin
ELEMENTS_PATH=/etc/nodepool/elements
DIB_CHECKSUM=1
DIB_IMAGE_CACHE=/opt/dib_cache
DIB_DISTRIBUTION_MIRROR=http://mirror.example.org/ubuntu
DIB_RELEASE=noble
DIB_DEBIAN_COMPONENTS=main,universe
DIB_GRUB_TIMEOUT=0
DIB_APT_LOCAL_CACHE=0
DIB_DISABLE_APT_CLEANUP=1
DIB_DEBOOTSTRAP_EXTRA_ARGS=--no-check-gpg
$ disk-image-create -x -t qcow2,raw --checksum --no-tmpfs --qemu-img-options compat=0.10 -o /opt/nodepool/images/ubuntu-noble-0000000001 ubuntu-minimal vm simple-init growroot openssh-server infra-package-needs nodepool-base
