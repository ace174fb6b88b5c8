# block-device-gpt: the partition table of the image.
export DIB_BLOCK_DEVICE=gpt
