# seeds/002: options after the elements (getopt permutes)
ELEMENTS_PATH=elements
DIB_RELEASE=precise
DIB_APT_SOURCES=apt-source.list.precise
$ disk-image-create vm ubuntu apt-sources custom-script -a amd64 -o ubuntu-precise
