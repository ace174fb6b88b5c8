# upstream's getopt list forgets these two; dib takes them
$ disk-image-create --image-extra-size 2 --mkfs-journal-size 128 debian-minimal
