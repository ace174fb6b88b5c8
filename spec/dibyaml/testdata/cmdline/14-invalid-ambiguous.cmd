$ disk-image-create --mkfs debian-minimal
