#!/usr/bin/env bash
# A memory leak, live: replicas that leak under steady load, with a memory limit, healed by
# Prescale or killed at the limit as Kubernetes kills them (docs/healing.md, "Memory").
#
# The platform is the real one: `prescale up -f` on a generated prescale.yaml, one builtin/echo
# service of --replicas fixed replicas (the HPA policy between min = max), `memory_limit:
# --limit`, every request `GET /leak/KIB` (each keeps KIB KiB resident for good: a leak of
# rate × KIB a second over the replicas). Two configurations, identical but for the healer:
#   healer     healer.enabled: true (the default): a replica whose memory grows steadily toward
#              its limit is replaced before it gets there, the old one serving until the new one
#              is ready;
#   kill       healer.enabled: false: the replica is killed once over its limit and restarts
#              after the crash back-off (10 s), as the kubelet restarts an OOMKilled container
#              (CrashLoopBackOff's first delay) — the peer.
# `--retries N` sets the route's retries (the gateway's default, 1, when not given; 0 stands for
# requests the gateway does not retry, such as a POST). Per run, `prescale load --rate R
# --duration D` (Poisson, the same --seed): requests scheduled,
# answered 200, failed (any other status, errors, unfinished); from the platform's log, the
# replacements (heal) and the kills over the limit. Rounds alternate which runs first.
#
# Prints the per-run lines and a RESULT line: failed_{healer,kill}, ok_share_{healer,kill},
# replaced_healer, killed_{healer,kill} (medians over --rounds).
#
# Usage: bench/memory_leak.sh [--rounds N] [--replicas N] [--limit 128Mi] [--rate R] [--kib K]
#                             [--duration SECONDS] [--retries N] [--seed N]
# Env:   PRESCALE=path/to/prescale (default build/apps/prescale/prescale)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

rounds=1 replicas=1 limit=128Mi rate=40 kib=64 duration=90 seed=1 retries=
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --replicas) replicas=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --kib) kib=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --retries) retries=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
prescale=${PRESCALE:-build/apps/prescale/prescale}
require_tools "scripts/install-deps" curl python3
require_prescale "$prescale"

work=$(mktemp -d)
up_pid=""
cleanup() {
  stop_platform
  rm -rf "$work"
}
trap cleanup EXIT

# FILE HEALER_ENABLED
write_config() {
  cat > "$1" <<YAML
version: 1
policy: {name: hpa}
healer: {enabled: $2}
services:
  - name: web
    kind: builtin/echo
    replicas: {min: $replicas, max: $replicas, initial: $replicas}
    memory_limit: $limit
gateway:
  listen: "127.0.0.1:0"
  routes:
    - match: {path_prefix: /}
      service: web
${retries:+      retries: $retries}
YAML
}

# NAME: one platform under the leak; prints "failed ok_share replaced killed".
run() {
  local dir=$work/$1-$2 enabled=true
  [ "$1" = kill ] && enabled=false
  mkdir -p "$dir"
  write_config "$dir/prescale.yaml" "$enabled"
  setsid "$prescale" up -f "$dir/prescale.yaml" --state-dir "$dir/state" --ui 127.0.0.1:0 \
    --port-file "$dir/gw.port" </dev/null >"$dir/up.log" 2>&1 &
  up_pid=$!
  local port
  port=$(wait_port_file "$dir/gw.port")
  wait_for "http://127.0.0.1:$port/"
  "$prescale" load --rate "$rate" --duration "${duration}s" --seed "$seed" \
    --mix "GET /leak/$kib:1" --target "http://127.0.0.1:$port" --json "$dir/load.json" \
    >"$dir/load.log" 2>&1
  stop_platform
  python3 - "$dir/load.json" "$dir/up.log" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["requests"]
log = open(sys.argv[2]).read()
ok = r["ok"]
print(r["scheduled"] - ok, f'{ok / r["scheduled"]:.5f}', log.count("replaced before it is killed"),
      log.count("over its memory limit"))
PY
}

declare -A failed ok_share replaced killed
for round in $(seq 1 "$rounds"); do
  order="healer kill"
  [ $((round % 2)) -eq 0 ] && order="kill healer"
  for config in $order; do
    read -r f s r k <<<"$(run "$config" "$round")"
    echo "round $round $config: failed $f, ok $s, replaced $r, killed over the limit $k" >&2
    failed[$config]+="$f"$'\n'; ok_share[$config]+="$s"$'\n'
    replaced[$config]+="$r"$'\n'; killed[$config]+="$k"$'\n'
  done
done
m() { printf '%s' "$1" | median; }
echo "RESULT failed_healer=$(m "${failed[healer]}") failed_kill=$(m "${failed[kill]}")" \
  "ok_share_healer=$(m "${ok_share[healer]}") ok_share_kill=$(m "${ok_share[kill]}")" \
  "replaced_healer=$(m "${replaced[healer]}") killed_healer=$(m "${killed[healer]}")" \
  "killed_kill=$(m "${killed[kill]}")"
