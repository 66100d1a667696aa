#!/usr/bin/env bash
# A slowdown, live: the real platform (`prescale up -f` on a generated prescale.yaml, one
# builtin/echo service of two fixed replicas behind the gateway, `--time-scale 60`: a real second
# is a minute of the controller's clock) under a steady Poisson load of `GET /delay/MS` requests
# (each held MS milliseconds by the replica: its time in service). Three phases per round:
#   usual   --usual-s seconds at MS = 20: the watch's warm-up and usual;
#   slower  --slower-s seconds at MS = 20 × FACTOR: a dependency that got slower;
#   back    --back-s seconds at MS = 20 again.
# What it measures, from the platform's log: the warnings before the slowdown (false ones), how
# long after its start the slowdown warning opened (real seconds; × 60 in the controller's
# minutes), and how long after the end it cleared. The peer — a latency alert against its day's
# mean (bench/slowdown.sh) — needs a day of history that a live bench does not have; it is
# compared in the simulator.
#
# Usage: bench/slowdown_live.sh [--factor F] [--rate R] [--rounds N]
# Env:   PRESCALE=path/to/prescale (default build/apps/prescale/prescale)
# Ends with a RESULT line: the rounds whose slowdown was told and cleared, the median delays
# (real seconds) over those rounds, and the warnings before the slowdown, summed.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

factor=1.5 rate=100 rounds=3 usual_s=60 slower_s=40 back_s=40
while [ $# -gt 0 ]; do
  case "$1" in
    --factor) factor=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --usual-s) usual_s=$2; shift 2 ;;
    --slower-s) slower_s=$2; shift 2 ;;
    --back-s) back_s=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
prescale=${PRESCALE:-build/apps/prescale/prescale}
require_tools "scripts/install-deps" curl python3
require_prescale "$prescale"
slow_ms=$(awk -v f="$factor" 'BEGIN { printf "%d", 20 * f + 0.5 }')

work=$(mktemp -d)
up_pid=""
cleanup() {
  stop_platform
  rm -rf "$work"
}
trap cleanup EXIT

# ROUND: writes "false_warnings detected_s cleared_s" (-1 when it did not happen) to
# $work/ROUND.result.
run() {
  local dir=$work/$1
  mkdir -p "$dir"
  cat > "$dir/prescale.yaml" <<YAML
version: 1
policy: {name: hpa}
services:
  - name: web
    kind: builtin/echo
    replicas: {min: 2, max: 2, initial: 2}
gateway:
  listen: "127.0.0.1:0"
  routes:
    - match: {path_prefix: /}
      service: web
YAML
  setsid "$prescale" up -f "$dir/prescale.yaml" --state-dir "$dir/state" --ui 127.0.0.1:0 \
    --time-scale 60 --port-file "$dir/gw.port" </dev/null >"$dir/up.log" 2>&1 &
  up_pid=$!
  local port
  port=$(wait_port_file "$dir/gw.port")
  wait_for "http://127.0.0.1:$port/"
  local target="http://127.0.0.1:$port"
  "$prescale" load --rate "$rate" --duration "${usual_s}s" --seed "$1" \
    --mix "GET /delay/20:1" --target "$target" >/dev/null 2>&1
  local slower_at back_at
  slower_at=$(date +%s.%N)
  "$prescale" load --rate "$rate" --duration "${slower_s}s" --seed "$1" \
    --mix "GET /delay/$slow_ms:1" --target "$target" >/dev/null 2>&1
  back_at=$(date +%s.%N)
  "$prescale" load --rate "$rate" --duration "${back_s}s" --seed "$1" \
    --mix "GET /delay/20:1" --target "$target" >/dev/null 2>&1
  stop_platform
  python3 - "$dir/up.log" "$slower_at" "$back_at" > "$work/$1.result" <<'PY'
import datetime, re, sys
log, slower_at, back_at = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
false, opened, cleared = 0, -1.0, -1.0
for line in open(log):
    m = re.match(r"(\S+Z) \S+\s+slowdown warning \d+ on web(:| cleared)", line)
    if not m:
        continue
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    if m.group(2) == ":":
        if t < slower_at:
            false += 1
        elif opened < 0:
            opened = t - slower_at
    elif opened >= 0 and cleared < 0 and t >= back_at:
        cleared = t - back_at
print(false, f"{opened:.1f}", f"{cleared:.1f}")
PY
}

false_total=0 detected="" cleared="" found=0 ended=0
for round in $(seq 1 "$rounds"); do
  run "$round"
  read -r f d c < "$work/$round.result"
  [ -n "$c" ] || { echo "round $round gave no result" >&2; exit 1; }
  echo "round $round: ${slow_ms} ms against 20: warnings before it $f, opened after ${d} s," \
    "cleared ${c} s after it ended (-1: not)" >&2
  false_total=$((false_total + f))
  # A miss is counted, not averaged in.
  if [ "$d" != -1.0 ]; then found=$((found + 1)); detected+="$d"$'\n'; fi
  if [ "$c" != -1.0 ]; then ended=$((ended + 1)); cleared+="$c"$'\n'; fi
done
# LINES: their median, "nan" without any.
median_or_nan() { if [ -n "$1" ]; then printf '%s' "$1" | median; else echo nan; fi; }
echo "RESULT factor=$factor detected=$found cleared=$ended rounds=$rounds" \
  "detected_after_s=$(median_or_nan "$detected")" \
  "cleared_after_s=$(median_or_nan "$cleared") warnings_before=$false_total"
