# dracut-ramdisk: the dracut release DIB builds from source on Ubuntu. dib
# uses the distribution's dracut everywhere; the variable is kept for
# elements that read it.
export DRACUT_VERSION=${DRACUT_VERSION:-037}
