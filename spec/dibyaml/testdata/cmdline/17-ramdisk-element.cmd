RAMDISK_ELEMENT=dracut-ramdisk
ELEMENTS_PATH=a::b
$ ramdisk-image-create -o ipa ironic-python-agent-ramdisk centos-minimal
