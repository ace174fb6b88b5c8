# seeds/001: CentOS 8 from local repositories
DIB_YUM_MINIMAL_BOOTSTRAP_REPOS=/etc/yum.repos.d
DIB_RELEASE=8
$ disk-image-create vm block-device-gpt centos-minimal
