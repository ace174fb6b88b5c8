# seeds/001: a GPT CentOS VM
$ disk-image-create -o centos vm block-device-gpt centos-minimal
