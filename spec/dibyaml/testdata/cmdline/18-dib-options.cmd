# dib's own options are not part of diskimage-builder's command line
$ disk-image-create --print-dibfile -o web --print-plan vm debian-minimal
