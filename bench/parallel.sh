#!/usr/bin/env bash
# Parallel multi-image apply (issue [N]), from one run on one machine:
# three Debian images that share their bootstrap and differ in packages,
# built
#   1. by one `dib apply -j 2` (two at a time, one empty build cache);
#   2. one after another, each on its own, as DIB does: nothing shared,
#      each `dib apply --image NAME --cache-dir off`;
#   3. with J1=1 also by one `dib apply -j 1` (one at a time, one empty
#      build cache: what sharing alone gives).
# Prints the wall times, the ratio of 1 to 2 (the target: <= 0.6 with
# -j 2 on 2 cores), and how often each run bootstrapped.
#
#   sudo bash bench/parallel.sh
#
# The apt cache (DIB_IMAGE_CACHE) is shared by all runs, as on a builder;
# every build cache starts empty. The machine's other load is not
# controlled: the runs are in one invocation, one after the other.
# KEEP=1 keeps the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /var/tmp/dib-parallel.XXXXXX)
[ "${KEEP:-}" = 1 ] || trap 'rm -rf "$work"' EXIT
go build -o "$work/dib" ./cmd/dib

cat >"$work/Dibfile" <<'EOF'
defaults:
  distro: debian-minimal
  release: bookworm
  arch: amd64
  outputs: [tar]
images:
  - name: web
    packages: [nginx-light, ca-certificates]
  - name: db
    packages: [sqlite3, python3-minimal]
  - name: tools
    packages: [curl, jq, less]
EOF
images="web db tools"

now() { date +%s.%N; }
apply() { # name [apply flags] : one dib apply, its events in NAME.events
  local name=$1
  shift
  "$work/dib" apply --no-color --json "$@" -O "$work/out-$name" "$work/Dibfile" >>"$work/$name.events" 2>>"$work/$name.log" || {
    tail -30 "$work/$name.log"; exit 1; }
}
boots() { # how many times a run's bootstrap ran
  python3 -c '
import json, sys
print(sum(1 for l in open(sys.argv[1]) for e in [json.loads(l)] if e["type"] == "step-started" and e.get("kind") == "bootstrap"))' "$work/$1.events"
}

# -j 2 first: it pays the downloads of packages the apt cache lacks, so
# the ratio errs against it.
start=$(now)
apply j2 -j 2 --cache-dir "$work/cache-j2"
j2=$(echo "$(now) - $start" | bc)

start=$(now)
for im in $images; do
  apply serial --image "$im" --cache-dir off
done
serial=$(echo "$(now) - $start" | bc)

if [ "${J1:-}" = 1 ]; then
  start=$(now)
  apply j1 -j 1 --cache-dir "$work/cache-j1"
  j1=$(echo "$(now) - $start" | bc)
fi

printf '%-52s %8s %10s\n' "3 images sharing a bootstrap ($(nproc) cores)" "wall" "bootstraps"
printf '%-52s %7.1fs %10s\n' "one after another, nothing shared (as DIB)" "$serial" "$(boots serial)"
printf '%-52s %7.1fs %10s\n' "dib apply -j 2 (one build cache)" "$j2" "$(boots j2)"
[ "${J1:-}" != 1 ] || printf '%-52s %7.1fs %10s\n' "dib apply -j 1 (one build cache)" "$j1" "$(boots j1)"
printf 'ratio -j 2 / one after another: %.2f (target <= 0.6)\n' "$(echo "$j2 / $serial" | bc -l)"
[ "${J1:-}" != 1 ] || printf 'ratio -j 2 / -j 1:              %.2f\n' "$(echo "$j2 / $j1" | bc -l)"
sed -n '/^IMAGE/,$p' "$work/j2.log"
