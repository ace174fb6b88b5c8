# a typo in -t: DIB finds it after the whole build, dib before
$ disk-image-create -t qcow debian-minimal
