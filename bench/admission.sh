#!/usr/bin/env bash
# Admission control, live: the same open-loop overload through `prescale up`'s gateway, with and
# without a service's `queue_limit` (docs/gateway-resilience.md "Admission control").
#
# The platform is the real one: `prescale up -f` on a generated prescale.yaml (gateway on port 0,
# its port read back from --port-file, as tests/up_test.cc does), one service whose replicas
# serve one request at a time with a fixed amount of work, so an overload builds a real FIFO
# queue in front of each replica:
#   --service fraud  (default) builtin/fraud, `POST /v1/score:batch` of the shared CSV's first
#                    --batch transactions (1,000: ~20 ms of CPU, parsing and scoring, on the
#                    replica's one I/O thread). The model is trained into a temporary
#                    directory first, as bench/services.sh does.
#   --service echo   builtin/echo, `GET /busy/MS` (--busy-ms, 20): the replica's one thread
#                    sleeps MS per request, a service time the machine's CPU noise cannot move.
# (The shop's own service, examples/shop/checkout.cc, cannot stand alone: every checkout calls
# fraud through the gateway first and answers 502 without it; there is no flag to skip it.)
# The replica count is fixed (replicas {min: N, max: N, initial: N}), so the autoscaler cannot
# add capacity: what changes between the two configurations is admission control alone.
#
# Steps:
#  1. Calibration: one platform, `wrk -c 2×replicas` closed loop for 5 s on the request: the peak
#     req/s of all replicas. capacity_rps = peak / replicas (what Little's law needs for the
#     limit: what a replica completes per second), concurrency 1, slo.latency_p99_ms --slo-ms.
#  2. Two configurations, identical but for `queue_limit` (0 = none, and --queue-limit-ms, by
#     default the SLO less a few service times: 150 ms for 200 ms and ~20 ms requests). In both
#     the route has `retries: 0` and `timeout: 60s`, and the gateway's static circuit breakers
#     (max_requests, max_connections, max_pending_requests) are raised to 100,000: the run
#     without the limit is then a plain FIFO queue, as the simulator models it, instead of one
#     cut at 1,024 requests in flight or 15 s (the defaults, themselves a crude limit).
#  3. Per round and configuration, one platform; on it `prescale load --rate F × peak` for
#     --duration seconds at each factor F of --factors (default 0.8, 1.3, 2: no overload, and
#     two sustained ones), Poisson arrivals, the same --seed for both configurations,
#     --connections 4096 (more than the FIFO ever holds, so the client is not the bottleneck),
#     --slo the SLO: `requests.ok_within_slo` counts the answers below 400 within the SLO of
#     their *scheduled* time. The client's timeout and drain (90 s) outlast the FIFO's backlog.
#     Rounds alternate which configuration runs first.
#  4. Per run: requests scheduled, answered 200, answered 503 overloaded (the gateway's
#     prescale_gateway_overflows_total{reason="admission"} over the run, from the dashboard's
#     /metrics), other (everything else: other statuses, errors, unfinished), 200s per second
#     (from the start to the last answer: the FIFO's drain counts), p50/p99 of the 200s only
#     (`latency_ok_ms`), the share of the 200s within the SLO, and the share of ALL scheduled
#     requests answered 200 within the SLO (refused ones are misses). Medians over --rounds
#     per cell.
#
# Prints the per-run lines, a markdown table of the medians (with the ideal share: what the
# replicas can serve, min(1, 1/F); and the share of the 200s within the SLO) and a RESULT line:
# within_slo_share_{fifo,limit}_Fx, ok_within_slo_share_limit_Fx,
# p99_ok_ms_{fifo,limit}_Fx, refused_share_limit_Fx and ratio_within_slo_limit_vs_fifo_Fx for
# each factor (1.3 → 1_3x), and the calibration (capacity_rps, queue_limit_per_replica).
# Everything started runs in its own session (setsid) and is stopped on exit.
#
# Usage: bench/admission.sh [--rounds N] [--duration SECONDS] [--factors "0.8 1.3 2"]
#                           [--replicas N] [--service fraud|echo] [--batch N] [--busy-ms MS]
#                           [--slo-ms MS] [--queue-limit-ms MS] [--seed N] [--data DIR]
# Env:   PRESCALE=path/to/prescale (default build/apps/prescale/prescale)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

rounds=3 duration=30 factors="0.8 1.3 2" replicas=1 service=fraud batch=1000 busy_ms=20
slo_ms=200 queue_limit_ms=150 seed=1 connections=4096 data=../shared/data
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --factors) factors=$2; shift 2 ;;
    --replicas) replicas=$2; shift 2 ;;
    --service) service=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --busy-ms) busy_ms=$2; shift 2 ;;
    --slo-ms) slo_ms=$2; shift 2 ;;
    --queue-limit-ms) queue_limit_ms=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
case "$service" in fraud|echo) ;; *) echo "--service: fraud or echo" >&2; exit 2 ;; esac
prescale=${PRESCALE:-build/apps/prescale/prescale}
require_tools "scripts/install-deps" wrk curl python3
require_prescale "$prescale"
creditcard=$data/fraud/ulb-creditcard-sample-train.csv
[ "$service" = echo ] || [ -s "$creditcard" ] || { echo "missing $creditcard (the shared data)" >&2; exit 1; }

work=$(mktemp -d)
up_pid=""
cleanup() {
  stop_platform
  rm -rf "$work"
}
trap cleanup EXIT

# --- the request --------------------------------------------------------------------------------
if [ "$service" = fraud ]; then
  echo "training the fraud model into $work/models ..." >&2
  "$prescale" train fraud --data "$creditcard" --model-dir "$work/models/fraud" >/dev/null
  python3 - "$creditcard" "$batch" "$work/batch.json" <<'PY'
import csv, json, sys
path, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
features = ["Time"] + [f"V{i}" for i in range(1, 29)] + ["Amount"]
with open(path) as f:
    rows = [{k: float(row[k]) for k in features} for _, row in zip(range(n), csv.DictReader(f))]
json.dump({"transactions": rows}, open(out, "w"))
PY
  kind=builtin/fraud
  model_line="    model_dir: $work/models/fraud"
  request_path=/v1/score:batch
  mix="POST /v1/score:batch@$work/batch.json:1"
  post_lua "$work/batch.json" > "$work/request.lua"
  probe=(curl -fsS -o /dev/null -H 'Content-Type: application/json' --data-binary "@$work/batch.json")
  what="POST /v1/score:batch ($batch transactions)"
else
  kind=builtin/echo
  model_line=""
  request_path=/busy/$busy_ms
  mix="GET /busy/$busy_ms:1"
  echo "" > "$work/request.lua"
  probe=(curl -fsS -o /dev/null)
  what="GET /busy/$busy_ms"
fi

# FILE CAPACITY_RPS QUEUE_LIMIT_MS: the prescale.yaml (queue_limit 0: none). The replicas are
# fixed; the HPA policy (which learns no capacity) keeps the admission limit at the calibrated
# capacity, where the prescale policy would set it from the capacity it learns.
write_config() {
  cat > "$1" <<YAML
version: 1
policy: {name: hpa}
services:
  - name: svc
    kind: $kind
$model_line
    replicas: {min: $replicas, max: $replicas, initial: $replicas}
    startup_time: 1s
    capacity_rps: $2
    concurrency: 1
    queue_limit: ${3}ms
    slo: {latency_p99_ms: $slo_ms}
gateway:
  listen: "127.0.0.1:0"
  circuit_breakers: {max_requests: 100000, max_connections: 100000, max_pending_requests: 100000}
  routes:
    - service: svc
      timeout: 60s
      retries: 0
YAML
}

# NAME CONFIG: starts `prescale up` and waits until the service answers through the gateway;
# sets gw_port, ui_port and up_pid.
start_platform() {
  local dir=$work/$1
  mkdir -p "$dir"
  setsid "$prescale" up -f "$2" --state-dir "$dir/state" --ui 127.0.0.1:0 \
    --port-file "$dir/gw.port" --ui-port-file "$dir/ui.port" --log-level warn \
    </dev/null >"$dir/up.log" 2>&1 &
  up_pid=$!
  gw_port=$(wait_port_file "$dir/gw.port")
  ui_port=$(wait_port_file "$dir/ui.port")
  for _ in $(seq 1 300); do
    "${probe[@]}" "http://127.0.0.1:$gw_port$request_path" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$1: the service did not answer through the gateway; its log:" >&2
  cat "$dir/up.log" >&2
  exit 1
}

# The gateway's refusals by admission control so far.
admission_refusals() {
  curl -fsS "http://127.0.0.1:$ui_port/metrics" |
    awk '/^prescale_gateway_overflows_total\{/ && /service="svc"/ && /reason="admission"/ { n += $NF }
         END { printf "%d\n", n }'
}

# --- calibration --------------------------------------------------------------------------------
write_config "$work/calibrate.yaml" 100 0
start_platform calibrate "$work/calibrate.yaml"
url="http://127.0.0.1:$gw_port$request_path"
wrk -t1 -c"$replicas" -d1s -s "$work/request.lua" "$url" >/dev/null  # warm-up
stats=$(wrk -t1 -c$((2 * replicas)) -d5s --latency -s "$work/request.lua" "$url" |
  wrk_stats calibration)
read -r peak _ _ <<<"$stats"
stop_platform
capacity=$(awk -v p="$peak" -v n="$replicas" 'BEGIN { printf "%.1f", p / n }')
service_ms=$(awk -v c="$capacity" 'BEGIN { printf "%.2f", 1000 / c }')
per_replica=$(awk -v c="$capacity" -v q="$queue_limit_ms" \
  'BEGIN { x = c * q / 1000; n = int(x); if (n < x) n++; print 1 + n }')
echo "calibration: $peak req/s for $replicas replica(s) -> capacity_rps $capacity" \
  "(service time ~$service_ms ms); queue_limit ${queue_limit_ms} ms -> $per_replica in flight" \
  "per replica" >&2
write_config "$work/fifo.yaml" "$capacity" 0
write_config "$work/limit.yaml" "$capacity" "$queue_limit_ms"

# --- the runs -----------------------------------------------------------------------------------
# MODE FACTOR ROUND: one `prescale load` on the running platform; appends
# "mode factor round requests ok overloaded other p50 p99 share late_pct ok_share goodput" to
# results.txt (share: of all requests, 200 within the SLO; ok_share: the same of the 200s;
# goodput: 200s per second from the start to the last answer, the backlog's drain included).
run_load() {
  local mode=$1 f=$2 r=$3 rate before after line
  rate=$(awk -v p="$peak" -v f="$f" 'BEGIN { printf "%.1f", p * f }')
  before=$(admission_refusals)
  "$prescale" load --target "http://127.0.0.1:$gw_port" --rate "$rate" \
    --duration "${duration}s" --mix "$mix" --seed "$seed" --connections "$connections" \
    --timeout 90s --drain 90s --slo "${slo_ms}ms" --json "$work/load.json" >/dev/null
  after=$(admission_refusals)
  line=$(python3 - "$work/load.json" "$((after - before))" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
refused = int(sys.argv[2])
q = r["requests"]
ok200 = r["status"].get("200", 0)
if ok200 != q["ok"]:
    print(f"warning: {q['ok']} ok answers but {ok200} 200s", file=sys.stderr)
other = q["scheduled"] - ok200 - refused
lat = r["latency_ok_ms"]
print(q["scheduled"], ok200, refused, other, f"{lat['p50']:.1f}", f"{lat['p99']:.1f}",
      f"{q['ok_within_slo'] / max(q['scheduled'], 1):.4f}",
      f"{100 * q['late'] / max(q['sent'], 1):.1f}", f"{q['ok_within_slo'] / max(ok200, 1):.4f}",
      f"{ok200 / max(r['elapsed_s'], 1e-9):.1f}")
PY
)
  echo "$mode $f $r $line" >> "$work/results.txt"
  read -r n ok refused other p50 p99 share late ok_share goodput <<<"$line"
  printf '  round %s %-5s %4s× = %6s req/s: %5s requests, %5s 200, %5s 503 overloaded, %4s other;' \
    "$r" "$mode" "$f" "$rate" "$n" "$ok" "$refused" "$other" >&2
  printf ' 200s p50 %s ms p99 %s ms (%s within SLO); within SLO %s of all; %s 200s/s; late %s %%\n' \
    "$p50" "$p99" "$ok_share" "$share" "$goodput" "$late" >&2
}

: > "$work/results.txt"
echo "measuring: $what, $replicas replica(s), ${duration}s per run at ×($factors) of" \
  "$peak req/s, $rounds round(s) ..." >&2
for r in $(seq 1 "$rounds"); do
  modes=(fifo limit)
  [ $((r % 2)) = 1 ] || modes=(limit fifo)
  for mode in "${modes[@]}"; do
    start_platform "$mode-$r" "$work/$mode.yaml"
    for f in $factors; do
      run_load "$mode" "$f" "$r"
      sleep 1
    done
    stop_platform
  done
done

# --- report -------------------------------------------------------------------------------------
# MODE FACTOR COLUMN (4 requests ... 10 share): the median over rounds.
med() { median_of_rounds "$work/results.txt" "$@"; }

echo
echo "$what through \`prescale up\`'s gateway; $replicas replica(s) of concurrency 1, capacity" \
  "$capacity req/s each (wrk calibration: $peak req/s in all, ~$service_ms ms a request);" \
  "SLO p99 $slo_ms ms; queue_limit $queue_limit_ms ms = $per_replica in flight per replica;" \
  "prescale load --rate F×$peak --duration ${duration}s --seed $seed --connections" \
  "$connections (Poisson); medians of $rounds round(s); $(nproc) cores"
echo
echo "| load | queue_limit | requests | 200 | 503 overloaded | other | 200s/s | p50 of 200s | p99 of 200s | 200s within SLO | 200 within SLO, share of all | ideal |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
result=()
for f in $factors; do
  ideal=$(awk -v f="$f" 'BEGIN { printf "%.3f", (f > 1) ? 1 / f : 1 }')
  for mode in fifo limit; do
    ql=none
    [ "$mode" = fifo ] || ql="${queue_limit_ms} ms"
    printf '| %s× | %s | %s | %s | %s | %s | %s | %s ms | %s ms | %s | %s | %s |\n' "$f" "$ql" \
      "$(med "$mode" "$f" 4)" "$(med "$mode" "$f" 5)" "$(med "$mode" "$f" 6)" \
      "$(med "$mode" "$f" 7)" "$(med "$mode" "$f" 13)" "$(med "$mode" "$f" 8)" "$(med "$mode" "$f" 9)" \
      "$(med "$mode" "$f" 12)" "$(med "$mode" "$f" 10)" "$ideal"
  done
  l=$(factor_label "$f")
  result+=("within_slo_share_limit_$l=$(med limit "$f" 10)" "within_slo_share_fifo_$l=$(med fifo "$f" 10)"
    "p99_ok_ms_limit_$l=$(med limit "$f" 9)" "p99_ok_ms_fifo_$l=$(med fifo "$f" 9)"
    "ok_within_slo_share_limit_$l=$(med limit "$f" 12)"
    "refused_share_limit_$l=$(ratio "$(med limit "$f" 6)" "$(med limit "$f" 4)")"
    "ratio_within_slo_limit_vs_fifo_$l=$(ratio "$(med limit "$f" 10)" "$(med fifo "$f" 10)")")
done
echo
echo "RESULT ${result[*]} capacity_rps=$capacity queue_limit_per_replica=$per_replica" \
  "replicas=$replicas service=$service"
