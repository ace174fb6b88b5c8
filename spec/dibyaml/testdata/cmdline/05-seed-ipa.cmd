# seeds/001: an Ironic Python Agent ramdisk with ironic-python-agent-builder's
# elements; the password is read from the environment, never written.
DIB_YUM_MINIMAL_BOOTSTRAP_REPOS=/etc/yum.repos.d
DIB_RELEASE=8
ELEMENTS_PATH=/usr/local/share/ironic-python-agent-builder/dib
DIB_DEFAULT_INSTALLTYPE=package
DIB_EPEL_MIRROR=http://mirrors.frankming.com.cn/epel
DIB_EPEL_DISABLED=1
DIB_DEV_USER_USERNAME=cloud
DIB_DEV_USER_PWDLESS_SUDO=yes
DIB_DEV_USER_PASSWORD=frankming@123++
$ disk-image-create -o ipa-centos8-stable-train ironic-python-agent-ramdisk centos-minimal devuser stable-interface-names
