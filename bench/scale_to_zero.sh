#!/usr/bin/env bash
# Scale to zero: how long the first request to a service with no replica waits for one, under
# Prescale's policy and under the Knative port (docs/gateway.md "Services scaled to zero",
# docs/baselines.md). Each round starts a fresh `prescale up` (its own state directory) on one
# `builtin/echo` service at `replicas: {min: 0, max: 2, initial: 0}`, waits --idle seconds (so
# that the Knative port has decided on idle seconds and started nothing), sends one `curl` and
# times its answer, and stops the platform. The policies alternate which runs first.
#
# Usage: bench/scale_to_zero.sh [--rounds N] [--idle SECONDS]   (defaults 5, 3)
# Env: PRESCALE=path/to/prescale (default build/apps/prescale/prescale)
# Ends with a RESULT line: each policy's median time to the first answer (s), the ratio of
# prescale's to the Knative port's, and the answers that were not 200.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

rounds=5 idle=3
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --idle) idle=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
prescale=${PRESCALE:-build/apps/prescale/prescale}
require_prescale "$prescale"
require_tools scripts/install-deps curl python3

work=$(mktemp -d)
up_pid=""
trap 'stop_platform; rm -rf "$work"' EXIT

# POLICY: one fresh platform, one request after --idle seconds; prints "SECONDS STATUS".
first_request() {
  local dir="$work/$1-$RANDOM"
  mkdir -p "$dir"
  cat >"$dir/prescale.yaml" <<YAML
version: 1
policy: {name: $1}
services:
  - name: web
    kind: builtin/echo
    replicas: {min: 0, max: 2, initial: 0}
gateway:
  listen: "127.0.0.1:0"
YAML
  "$prescale" up -f "$dir/prescale.yaml" --state-dir "$dir/state" --ui 127.0.0.1:0 \
    --port-file "$dir/gw.port" >"$dir/up.log" 2>&1 &
  up_pid=$!
  local port
  port=$(wait_port_file "$dir/gw.port")
  sleep "$idle"
  curl -s -o /dev/null --max-time 20 -w '%{time_total} %{http_code}\n' "http://127.0.0.1:$port/"
  stop_platform
}

: >"$work/times"
for r in $(seq 1 "$rounds"); do
  order=(prescale kpa)
  [ $((r % 2)) -eq 0 ] && order=(kpa prescale)
  for p in "${order[@]}"; do
    read -r seconds status < <(first_request "$p")
    printf '%s %s %s\n' "$p" "$seconds" "$status" | tee -a "$work/times"
  done
done

median_of() { awk -v p="$1" '$1 == p { print $2 }' "$work/times" | median; }
prescale_s=$(median_of prescale)
kpa_s=$(median_of kpa)
not_200=$(awk '$3 != 200' "$work/times" | wc -l)
printf 'first request, median of %s: prescale %s s, kpa %s s\n' "$rounds" "$prescale_s" "$kpa_s"
echo "RESULT prescale_first_request_s=$prescale_s kpa_first_request_s=$kpa_s" \
  "ratio_vs_kpa=$(ratio "$prescale_s" "$kpa_s") not_200=$not_200"
