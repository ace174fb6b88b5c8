# seeds/004: a deploy ramdisk; -o's extension is kept (it is not the type)
$ ramdisk-image-create -o deploy.ramdisk deploy
