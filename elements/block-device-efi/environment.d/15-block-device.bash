# block-device-efi: an EFI system partition on a GPT disk.
export DIB_BLOCK_DEVICE=efi
