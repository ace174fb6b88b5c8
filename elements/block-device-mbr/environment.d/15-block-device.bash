# block-device-mbr: the partition table of the image.
export DIB_BLOCK_DEVICE=mbr
