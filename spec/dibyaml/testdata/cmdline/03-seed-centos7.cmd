# seeds/001: CentOS 7 from a local cloud image, IMAGE_NAME exported
DIB_DISTRIBUTION_MIRROR=http://mirrors.frankming.com.cn/centos/
DIB_CLOUD_IMAGES=/data/images/CentOS-7-x86_64-GenericCloud.qcow2
DIB_LOCAL_IMAGE=/data/images/CentOS-7-x86_64-GenericCloud.qcow2
IMAGE_NAME=centos7
DIB_EPEL_MIRROR=http://mirrors.frankming.com.cn/epel
DIB_EPEL_DISABLED=1
DIB_CLOUD_INIT_DATASOURCES=ConfigDrive, OpenStack
$ disk-image-create centos7 vm cloud-init-datasources dhcp-all-interfaces iscsi-boot dracut-regenerate block-device-efi -o centos7
