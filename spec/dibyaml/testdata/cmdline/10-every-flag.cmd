# every option, in getopt's spellings: bundled, attached, abbreviated, =
DIB_DEBUG_TRACE=1
DIB_IMAGE_SIZE=10
DIB_NO_TMPFS=0
break=after-error,before-install
FS_TYPE=xfs
$ disk-image-create -xu -n -pvim,curl -p git -oout/img.qcow2 -tqcow2 -a arm64 --check --image-size=2.5 --image-cache /var/cache/dib --offline --install-type package --root-label root --mkfs-options '-m 1' --max-online-resize 274877906944 --min-tmpfs 3 --logfile build.log --docker-target x:y -- debian-minimal vm
