# dpkg: defaults of the dpkg element.
# apt and debconf never ask questions during the build.
export DEBIAN_FRONTEND=noninteractive
# 1: keep downloaded .deb files during the build (the runtime may bind a
# shared cache on /var/cache/apt/archives); 0: apt cleans as it goes.
export DIB_APT_LOCAL_CACHE=${DIB_APT_LOCAL_CACHE:-1}
# 1: update-initramfs is deferred during package installs and run once at
# the end of post-install.d; 0: every package runs it as usual.
export DIB_DEFER_INITRAMFS=${DIB_DEFER_INITRAMFS:-1}
