$ disk-image-create --image-sise 3 debian-minimal
