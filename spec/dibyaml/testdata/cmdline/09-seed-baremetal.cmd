# seeds/003
DIB_DEV_USER_PWDLESS_SUDO=yes
DIB_DEV_USER_USERNAME=user
DIB_DEV_USER_PASSWORD=password
$ disk-image-create centos7 baremetal dhcp-all-interfaces grub2 -o my-image
