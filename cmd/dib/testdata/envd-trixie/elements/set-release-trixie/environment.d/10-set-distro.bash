# Test element: pins the Debian release from environment.d, as DIB's own
# debian-minimal/test-elements/*-build-succeeds elements do.
export DIB_RELEASE=trixie
