# -c: DIB re-executes itself with an empty environment
DIB_RELEASE=trixie
ELEMENTS_PATH=/nowhere
$ disk-image-create -c -t tar debian-minimal
