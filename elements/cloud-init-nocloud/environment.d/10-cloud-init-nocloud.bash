# cloud-init reads its data from the image itself (NoCloud seed).
export DIB_CLOUD_INIT_DATASOURCES="NoCloud"
