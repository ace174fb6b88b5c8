# ubuntu-common: Ubuntu releases dib builds all boot with systemd.
export DIB_INIT_SYSTEM=${DIB_INIT_SYSTEM:-systemd}
