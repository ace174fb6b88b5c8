# dib's own variables (its namespace marker, build cache, CI switches) are
# not the image's environment
DIB_MOUNT_NS_PARENT=mnt:[4026531841]
DIB_CACHE_DIR=/var/cache/dib
DIB_REQUIRE_INTEGRATION=1
DIB_RELEASE=trixie
$ disk-image-create -t tar debian-minimal
