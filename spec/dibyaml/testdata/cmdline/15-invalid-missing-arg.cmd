$ disk-image-create debian-minimal -o
