#!/usr/bin/env bash
# The build cache shared through an OCI registry (issue [N]), from one run
# on one machine: a cold build (empty build cache) pushing to a registry,
# then "a second machine" (another empty build cache, another output
# directory) pulling from it. Both hold the fleet's shared secret key
# (--cache-secret-key), so the steps that see DEV_PASSWORD are shared too.
# A third build pulls without that key, as a machine outside the fleet
# would: the steps that see the secret, and those after them, run.
# Prints the wall times, the ratios to the cold build, what each ran, what
# was pulled and the registry's storage for the image.
#
#   sudo bash bench/registry.sh [examples/debian-vm.yaml]
#
# The registry is Debian's docker-registry (CNCF Distribution) on
# 127.0.0.1 with its storage in the work directory; it is stopped at the
# end. The downloads cache (apt, images) is the machine's, as it is.
# KEEP=1 keeps the work directory (logs, events, registry storage); DIB=PATH
# uses that dib binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
example=${1:-examples/debian-vm.yaml}
work=$(mktemp -d /var/tmp/dib-registry.XXXXXX)
regpid=
cleanup() {
  if [ -n "$regpid" ]; then kill "$regpid" 2>/dev/null || true; wait "$regpid" 2>/dev/null || true; fi
  [ "${KEEP:-}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
if [ -n "${DIB:-}" ]; then cp "$DIB" "$work/dib"; else go build -o "$work/dib" ./cmd/dib; fi
export DEV_PASSWORD=${DEV_PASSWORD:-bench}
head -c 32 /dev/urandom | base64 >"$work/fleet.key"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/storage
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
regpid=$!
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
  sleep 0.1
done
ref="http://127.0.0.1:$port/dib/cache"

run() { # name cachedir [apply flags]
  local name=$1 cache=$2 start end
  shift 2
  start=$(date +%s.%N)
  "$work/dib" apply --no-color --json --cache-dir "$cache" "$@" -O "$work/out-$name" "$example" \
    >"$work/$name.events" 2>"$work/$name.log" || { tail -30 "$work/$name.log"; exit 1; }
  end=$(date +%s.%N)
  echo "$end - $start" | bc >"$work/$name.time"
}

run cold "$work/cache-cold" --cache-to "$ref" --cache-secret-key "$work/fleet.key"
storage=$(du -sb "$work/storage" | cut -f1)
run second "$work/cache-second" --cache-from "$ref" --cache-secret-key "$work/fleet.key"
run nokey "$work/cache-nokey" --cache-from "$ref"

python3 - "$work" "$(basename "$example")" "$storage" <<'PY'
import json, re, sys
from datetime import datetime
work, example, storage = sys.argv[1], sys.argv[2], int(sys.argv[3])
def ts(s):
    s = s.replace("Z", "+00:00")
    if "." in s:
        a, b = s.split(".", 1)
        i = max(b.find("+"), b.find("-"))
        s = a + "." + b[:i][:6] + b[i:]
    return datetime.fromisoformat(s)
def events(name):
    return [json.loads(l) for l in open(f"{work}/{name}.events")]
def wall(name):
    return float(open(f"{work}/{name}.time").read())
def mib(evs, typ):
    return sum(float(re.search(r": ([0-9.]+) MiB", e["reason"]).group(1)) for e in evs if e["type"] == typ)
cold = wall("cold")
ev = events("cold")
last = max(ts(e["time"]) for e in ev if e["type"] in ("step-finished", "step-cached"))
end = max(ts(e["time"]) for e in ev if e["type"] in ("build-finished", "build-failed"))
push = (end - last).total_seconds()
build = cold - push
pushed = [e for e in ev if e["type"] == "cache-pushed"]
print(f"{example}: the build cache through an OCI registry (Distribution 2.8.2 on 127.0.0.1)")
print(f"  {'build':44} {'wall':>8} {'vs cold':>8} {'vs cold build':>14}")
rows = [("cold, empty cache, --cache-to", "cold"),
        ("second machine, shared key, --cache-from", "second"),
        ("second machine, no shared key", "nokey")]
for label, name in rows:
    t = wall(name)
    print(f"  {label:44} {t:7.1f}s {t / cold:7.2f}x {t / build:13.2f}x")
print(f"  (the cold build: {build:.1f}s building, {push:.1f}s pushing {len(pushed)} entries, {mib(ev, 'cache-pushed'):.0f} MiB)")
for name in ("second", "nokey"):
    evs = events(name)
    ran = [e["title"] for e in evs if e["type"] == "step-started"]
    pulled = [e for e in evs if e["type"] == "cache-pulled"]
    print(f"  {name}: pulled {len(pulled)} entries ({mib(evs, 'cache-pulled'):.0f} MiB); ran: {', '.join(ran) or 'none'}")
print(f"  registry storage for the image: {storage / 2**20:.0f} MiB")
PY
