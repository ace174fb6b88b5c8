#!/usr/bin/env bash
# Builds the Debian VM example with dib, then bootstraps the same package
# set with a bare mmdebstrap, in the same run on the same machine, and
# prints both wall times and their ratio (issue [F]'s target: <= 1.6).
#
#   sudo bash bench/vm-vs-mmdebstrap.sh [--cold]
#
# --cold empties dib's apt cache first; mmdebstrap always downloads into its
# own empty cache, so the cold ratio is the fair one.
set -euo pipefail
cd "$(dirname "$0")/.."
cold=0
[ "${1:-}" = "--cold" ] && cold=1

work=$(mktemp -d /var/tmp/dib-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
go build -o "$work/dib" ./cmd/dib

cache=${DIB_IMAGE_CACHE:-$HOME/.cache/image-create}
if [ "$cold" = 1 ]; then
  rm -rf "$cache/apt"
fi

start=$(date +%s.%N)
DEV_PASSWORD=bench "$work/dib" apply --no-color examples/debian-vm.yaml -O "$work/out" >"$work/dib.log" 2>&1 || {
  tail -30 "$work/dib.log"; exit 1; }
dib_s=$(echo "$(date +%s.%N) - $start" | bc)

# The same package set from the same suites (dib bootstraps from the
# release, its updates and security): everything dpkg lists in the image.
pkgs=$(awk '{print $1}' "$work/out/debian-vm.d/dpkg_packages" | grep -v '^linux-image-[0-9]' | paste -sd, -)
start=$(date +%s.%N)
mmdebstrap --quiet --variant=minbase --include="$pkgs" \
  --aptopt='DPkg::Options::=--force-unsafe-io' \
  bookworm "$work/mmdebstrap.tar" http://deb.debian.org/debian \
  "deb http://deb.debian.org/debian bookworm-updates main" \
  "deb http://deb.debian.org/debian-security bookworm-security main" >"$work/mm.log" 2>&1 || {
  tail -30 "$work/mm.log"; exit 1; }
mm_s=$(echo "$(date +%s.%N) - $start" | bc)

printf 'dib apply examples/debian-vm.yaml: %6.1f s\n' "$dib_s"
printf 'mmdebstrap, same %d packages:    %6.1f s\n' "$(echo "$pkgs" | tr , '\n' | wc -l)" "$mm_s"
printf 'ratio dib / mmdebstrap:           %6.2f\n' "$(echo "$dib_s / $mm_s" | bc -l)"
grep -E 'done in' "$work/dib.log" | sed 's/^/  /'
