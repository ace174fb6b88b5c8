# ubuntu: cloud-init asks only Ec2 for metadata unless the build says
# otherwise (Ubuntu's cloud images otherwise probe every datasource).
export DIB_CLOUD_INIT_DATASOURCES=${DIB_CLOUD_INIT_DATASOURCES:-Ec2}
export DIB_LOCAL_IMAGE=${DIB_LOCAL_IMAGE:-}
