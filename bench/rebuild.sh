#!/usr/bin/env bash
# Rebuild times with the build cache (issue [I]), from one run on one
# machine: a cold build (empty build cache; the shared apt cache as it is),
# a rebuild with nothing changed, a rebuild after appending a line to one
# install.d script, and a rebuild after adding an output (vhd; tgz for
# tree builds). Prints the wall times, their ratios to the cold build, the
# steps each rebuild ran and the size of the build cache.
#
#   sudo bash bench/rebuild.sh [examples/debian-vm.yaml]
#
# The edited script belongs to a small element made here (bench-edit), so
# the dib binary, and with it every cache key, stays the same. A fifth
# build, cold without any build cache (--cache-dir off), gives the cost of
# writing the cache. KEEP=1 keeps the work directory (logs, events).
set -euo pipefail
cd "$(dirname "$0")/.."
example=${1:-examples/debian-vm.yaml}
work=$(mktemp -d /var/tmp/dib-rebuild.XXXXXX)
[ "${KEEP:-}" = 1 ] || trap 'rm -rf "$work"' EXIT
go build -o "$work/dib" ./cmd/dib
export DIB_CACHE_DIR="$work/cache" DEV_PASSWORD=${DEV_PASSWORD:-bench}

mkdir -p "$work/elements/bench-edit/install.d"
cat >"$work/elements/bench-edit/install.d/50-bench-edit" <<'EOF'
#!/bin/bash
set -eu
echo "built by bench/rebuild.sh" > /etc/dib-bench
EOF
chmod +x "$work/elements/bench-edit/install.d/50-bench-edit"
echo "An element whose install.d script bench/rebuild.sh edits." >"$work/elements/bench-edit/README.rst"

# The example with the element added, and a copy with one more output.
python3 - "$example" "$work" <<'EOF'
import sys, re
src, work = sys.argv[1], sys.argv[2]
text = open(src).read()
text = re.sub(r'(?m)^elements:\s*\[(.*)\]\s*$', lambda m: 'elements: [' + m.group(1) + ', bench-edit]', text)
text = re.sub(r'(?m)^elements:\s*$', 'elements:\n  - bench-edit', text)
text = "elements-path: [" + work + "/elements]\n" + text
open(work + "/Dibfile", "w").write(text)
extra = "vhd" if re.search(r'(?m)^block-device:|^\s*- (qcow2|raw)\s*$', text) else "tgz"
more = re.sub(r'(?m)^outputs:\s*$', 'outputs:\n  - ' + extra, text)
open(work + "/Dibfile.more", "w").write(more)
open(work + "/extra", "w").write(extra)
EOF

run() { # name dibfile [apply flags]
  local name=$1 file=$2 start end
  shift 2
  start=$(date +%s.%N)
  "$work/dib" apply --no-color --json "$@" -O "$work/out" "$file" >"$work/$name.events" 2>"$work/$name.log" || {
    tail -30 "$work/$name.log"; exit 1; }
  end=$(date +%s.%N)
  echo "$end - $start" | bc >"$work/$name.time"
  cat "$work/out/"*.log >"$work/$name.buildlog"
}
ran() { # the titles of the steps a run executed
  python3 -c '
import json, sys
print(", ".join(e["title"] for e in map(json.loads, open(sys.argv[1])) if e["type"] == "step-started") or "none")' "$work/$1.events"
}

run nocache "$work/Dibfile" --cache-dir off
rm -rf "$work/out"
run cold "$work/Dibfile"
run noop "$work/Dibfile"
echo 'echo edited >> /etc/dib-bench' >>"$work/elements/bench-edit/install.d/50-bench-edit"
run edited "$work/Dibfile"
run outputs "$work/Dibfile.more"

cold=$(cat "$work/cold.time")
printf '%-34s %8s %7s\n' "$(basename "$example")" "wall" "ratio"
for r in nocache cold noop edited outputs; do
  t=$(cat "$work/$r.time")
  label=$r
  case $r in
    noop) label="no-op rebuild" ;;
    edited) label="install.d script edited" ;;
    outputs) label="outputs + $(cat "$work/extra")" ;;
    cold) label="cold (empty build cache)" ;;
    nocache) label="cold, no build cache" ;;
  esac
  printf '%-34s %7.1fs %6.2fx\n' "$label" "$t" "$(echo "$t / $cold" | bc -l)"
done
for r in noop edited outputs; do
  printf '%s ran: %s\n' "$r" "$(ran $r)"
done
printf 'build cache: %s in %s entries\n' "$(du -sh "$work/cache" | cut -f1)" "$(ls "$work/cache/entries" | wc -l)"
grep -h 'snapshot of the tree' "$work/cold.buildlog" | sed 's/^/cold build: /' || true
printf 'cold build, no build cache vs with it: %.1f%%\n' "$(echo "($cold - $(cat "$work/nocache.time")) * 100 / $(cat "$work/nocache.time")" | bc -l)"
# The same cost measured inside a build: the time between a step's end
# and the next step's start is the cache writing the step's entry
# (snapshots, outputs), plus the snapshots taken inside a phase step (the
# log says how long each took), less the time the disk snapshot's step
# spent finishing the image (the first output would do that without a
# cache); it does not depend on the other builds' noise.
gaps() { # name
python3 - "$work/$1.events" "$work/$1.buildlog" "$1" <<'PY'
import json, re, sys
from datetime import datetime
def ts(s):
    s = s.replace("Z", "+00:00")
    if "." in s:
        a, b = s.split(".", 1)
        i = max(b.find("+"), b.find("-"))
        s = a + "." + b[:i][:6] + b[i:]
    return datetime.fromisoformat(s)
def secs(v, unit):
    return float(v) / {"ms": 1000, "s": 1, "µs": 1e6}[unit]
ev = [json.loads(l) for l in open(sys.argv[1])]
total = (ts(ev[-1]["time"]) - ts(ev[0]["time"])).total_seconds()
gaps, last, per = 0.0, None, []
for e in ev:
    if e["type"] == "step-finished":
        last, title = ts(e["time"]), e["title"]
    elif e["type"] in ("step-started", "build-finished") and last is not None:
        g = (ts(e["time"]) - last).total_seconds()
        gaps += g
        if g > 0.3:
            per.append("%s %.1fs" % (title, g))
        last = None
inside, finish = 0.0, 0.0
for line in open(sys.argv[2], errors="replace"):
    m = re.search(r"snapshot of the tree \(.*inside the step.*\) written in ([0-9.]+)(ms|s)", line)
    if m:
        inside += secs(m.group(1), m.group(2))
    m = re.search(r"snapshot of the disk image written in .* \(the image finished in ([0-9.]+)(µs|ms|s)\)", line)
    if m:
        finish += secs(m.group(1), m.group(2))
per.append("snapshots inside phases %.1fs" % inside)
if finish:
    per.append("less finishing the image %.1fs" % finish)
gaps += inside - finish
print("cache writes during the %s build: %.1fs of %.1fs (%.1f%% over the build without them): %s" % (sys.argv[3], gaps, total, 100 * gaps / (total - gaps), ", ".join(per)))
PY
}
gaps cold
gaps edited
steps() { # name
  echo "steps of the $1 build:"
  python3 -c '
import json, sys
for e in map(json.loads, open(sys.argv[1])):
    if e["type"] == "step-finished":
        print("  %6.1fs  %s" % (e.get("seconds", 0), e["title"]))' "$work/$1.events"
}
steps cold
steps edited
