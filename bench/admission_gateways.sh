#!/usr/bin/env bash
# Admission control behind several gateways: each gateway with the service's whole limit (the
# peer: Envoy's circuit breakers, and Prescale's gateway pods before the controller shared them,
# are per instance) against the limit `prescale controller` shares among them
# (docs/kubernetes.md, "Admission limits").
#
# What runs here, all real binaries on 127.0.0.1, as the rendered pods run in a cluster:
#  - one replica of builtin/echo (`prescale serve echo --threads 1`): `GET /busy/MS` (--busy-ms,
#    20) holds its one thread MS per request, so it serves 1000 / MS req/s and a queue builds in
#    front of it under an overload;
#  - two `prescale gateway -f prescale.yaml` in front of it, each loaded by its own
#    `prescale load` at half the rate (a balancer splitting the clients evenly);
#  - peer: the gateways apply the file's `queue_limit` (--queue-limit-ms, 100) each:
#    `concurrency + ceil(capacity_rps × queue_limit)` in flight per replica, per gateway;
#  - prescale: `prescale controller -f prescale.yaml --api-server URL` against a stand-in for the
#    Kubernetes API (a few lines of Python below: the pods and the Deployment as the API lists
#    them, the gateways' and the replica's addresses), and each gateway with
#    `--admission-from http://CONTROLLER/v1/admission/POD`: its part of the number.
# The file: capacity_rps 1000 / MS, concurrency 1, replicas {min: 1, max: 1} (nothing scales:
# what differs is how many requests the gateways let wait), SLO p99 --slo-ms (200), route
# timeout 60 s, no retries, the static circuit breakers raised to 100,000.
#
# Per round and mode: `prescale load --rate F × capacity / 2` on each gateway for --duration
# seconds (Poisson, seeds 1 and 2, --slo the SLO), for each factor F of --factors (default
# "1.5 3"). Rounds alternate which mode runs first. Per run, over both loads: requests scheduled,
# 200s, other answers, the share of the 200s within the SLO, the share of all requests answered
# 200 within the SLO, the p99 of the 200s (the larger of the two loads'), and the limits the
# gateways had in force at the end (the most common over the rounds in the table). Medians over --rounds.
#
# Prints the per-run lines, a markdown table of the medians and a RESULT line:
# ok_within_slo_share_{peer,prescale}_Fx, within_slo_share_{peer,prescale}_Fx,
# p99_ok_ms_{peer,prescale}_Fx, ratio_ok_within_slo_prescale_vs_peer_Fx (F with "." as "_").
# Everything started runs in its own session (setsid) and is stopped on exit.
#
# Usage: bench/admission_gateways.sh [--rounds N] [--duration SECONDS] [--factors "1.5 3"]
#                                    [--busy-ms MS] [--slo-ms MS] [--queue-limit-ms MS]
# Env:   PRESCALE=path/to/prescale (default build/apps/prescale/prescale)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

rounds=3 duration=20 factors="1.5 3" busy_ms=20 slo_ms=200 queue_limit_ms=100
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --factors) factors=$2; shift 2 ;;
    --busy-ms) busy_ms=$2; shift 2 ;;
    --slo-ms) slo_ms=$2; shift 2 ;;
    --queue-limit-ms) queue_limit_ms=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
prescale=${PRESCALE:-build/apps/prescale/prescale}
require_tools "scripts/install-deps" curl python3
require_prescale "$prescale"

work=$(mktemp -d)
pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
cleanup() {
  stop_all
  rm -rf "$work"
}
trap cleanup EXIT

capacity=$(awk -v b="$busy_ms" 'BEGIN { printf "%.1f", 1000 / b }')
per_replica=$(awk -v c="$capacity" -v q="$queue_limit_ms" \
  'BEGIN { x = c * q / 1000; n = int(x); if (n < x) n++; print 1 + n }')
cat > "$work/prescale.yaml" <<YAML
version: 1
services:
  - name: web
    kind: builtin/echo
    replicas: {min: 1, max: 1, initial: 1}
    startup_time: 1s
    capacity_rps: $capacity
    concurrency: 1
    queue_limit: ${queue_limit_ms}ms
    slo: {latency_p99_ms: $slo_ms}
gateway:
  circuit_breakers: {max_requests: 100000, max_connections: 100000, max_pending_requests: 100000}
  routes:
    - service: web
      timeout: 60s
      retries: 0
YAML

# The stand-in for the Kubernetes API: the Deployment web, and the pods in pods.json (read at
# every request, so the script adds the gateways once their ports are known).
cat > "$work/api.py" <<'PY'
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
pods_file, port_file = sys.argv[1], sys.argv[2]
def deployment():
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"}, "spec": {"replicas": 1}}
class Api(BaseHTTPRequestHandler):
    def answer(self, body, status=200):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/api/v1/namespaces/default/pods":
            self.answer({"kind": "PodList", "metadata": {"resourceVersion": "1"},
                         "items": json.load(open(pods_file))})
        elif path == "/apis/apps/v1/namespaces/default/deployments":
            self.answer({"kind": "DeploymentList", "items": [deployment()]})
        elif path == "/apis/apps/v1/namespaces/default/deployments/web/scale":
            self.answer({"kind": "Scale", "spec": {"replicas": 1}})
        else:
            self.answer({"kind": "Status", "code": 404, "message": path + " not found"}, 404)
    def do_PATCH(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.answer({"kind": "Scale", "spec": {"replicas": 1}})
    def log_message(self, *args):
        pass
server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
open(port_file, "w").write(str(server.server_address[1]))
server.serve_forever()
PY

# NAME APP PORTS_JSON: a running, ready pod as the API lists it.
pod_json() {
  printf '{"metadata": {"name": "%s", "uid": "uid-%s", "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"app.kubernetes.io/name": "%s", "app.kubernetes.io/part-of": "prescale"}}, "spec": {"containers": [{"name": "c", "ports": %s}]}, "status": {"phase": "Running", "podIP": "127.0.0.1", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:10Z"}], "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}}' \
    "$1" "$1" "$2" "$3"
}

# ADMIN_PORT: the admission limit a gateway has in force for web ("" when it does not answer).
limit_in_force() {
  local m
  m=$(curl -fsS "http://127.0.0.1:$1/metrics" 2>/dev/null) || return 0
  awk '$1 == "prescale_gateway_admission_limit{service=\"web\"}" { print $2 }' <<<"$m"
}

# MODE ROUND: starts the replica, the gateways (and, for prescale, the stand-in API and the
# controller); sets gw_ports and admin_ports.
start_mode() {
  local mode=$1 dir=$work/$1-$2 web_port controller_admin="" api_port
  mkdir -p "$dir"
  setsid "$prescale" serve echo --threads 1 --port 0 --port-file "$dir/web.port" \
    --log-level warn </dev/null >"$dir/web.log" 2>&1 &
  pids+=($!)
  web_port=$(wait_port_file "$dir/web.port")
  if [ "$mode" = prescale ]; then
    pod_json web-1 web "[{\"name\": \"http\", \"containerPort\": $web_port}]" |
      python3 -c 'import json,sys; print(json.dumps([json.load(sys.stdin)]))' > "$dir/pods.json"
    setsid python3 "$work/api.py" "$dir/pods.json" "$dir/api.port" </dev/null \
      >"$dir/api.log" 2>&1 &
    pids+=($!)
    api_port=$(wait_port_file "$dir/api.port")
    setsid "$prescale" controller -f "$work/prescale.yaml" --api-server "http://127.0.0.1:$api_port" \
      --admin-address 127.0.0.1 --admin-port 0 --admin-port-file "$dir/controller.admin" \
      --log-level warn </dev/null >"$dir/controller.log" 2>&1 &
    pids+=($!)
    controller_admin=$(wait_port_file "$dir/controller.admin")
  fi
  gw_ports=() admin_ports=()
  local pods="" g
  for g in a b; do
    local flags=()
    if [ -n "$controller_admin" ]; then
      flags=(--admission-from "http://127.0.0.1:$controller_admin/v1/admission/prescale-gateway-$g")
    fi
    setsid "$prescale" gateway -f "$work/prescale.yaml" --upstream "web=127.0.0.1:$web_port" \
      --port 0 --port-file "$dir/gw-$g.port" --admin-port 0 --admin-port-file "$dir/gw-$g.admin" \
      --log-level warn "${flags[@]}" </dev/null >"$dir/gw-$g.log" 2>&1 &
    pids+=($!)
    gw_ports+=("$(wait_port_file "$dir/gw-$g.port")")
    admin_ports+=("$(wait_port_file "$dir/gw-$g.admin")")
    pods+=", $(pod_json "prescale-gateway-$g" prescale-gateway \
      "[{\"name\": \"admin\", \"containerPort\": ${admin_ports[-1]}}]")"
  done
  if [ "$mode" = prescale ]; then
    python3 - "$dir/pods.json" "[${pods#, }]" <<'PY'
import json, os, sys
pods = json.load(open(sys.argv[1])) + json.loads(sys.argv[2])
json.dump(pods, open(sys.argv[1] + ".tmp", "w"))
os.replace(sys.argv[1] + ".tmp", sys.argv[1])  # the stand-in never reads half a file
PY
    # Each gateway has its part in force once the controller has listed them (an even share).
    local want=$(( (per_replica + 1) / 2 ))
    for i in 0 1; do
      for _ in $(seq 1 100); do
        [ "$(limit_in_force "${admin_ports[$i]}")" = "$want" ] && break
        sleep 0.1
      done
      [ "$(limit_in_force "${admin_ports[$i]}")" = "$want" ] || {
        echo "gateway $i: admission limit $(limit_in_force "${admin_ports[$i]}"), not the" \
          "controller's $want; its log:" >&2
        cat "$dir/gw-$( [ "$i" = 0 ] && echo a || echo b ).log" "$dir/controller.log" >&2
        exit 1
      }
    done
  fi
  for p in "${gw_ports[@]}"; do wait_for "http://127.0.0.1:$p/busy/1"; done
}

# MODE FACTOR ROUND: both loads at once; appends
# "mode factor round requests ok other within_slo_share ok_within_slo_share p99" to results.txt.
run_load() {
  local mode=$1 f=$2 r=$3 rate i line
  rate=$(awk -v c="$capacity" -v f="$f" 'BEGIN { printf "%.1f", c * f / 2 }')
  local load_pids=()
  for i in 0 1; do
    setsid "$prescale" load --target "http://127.0.0.1:${gw_ports[$i]}" --rate "$rate" \
      --duration "${duration}s" --mix "GET /busy/$busy_ms:1" --seed $((i + 1)) \
      --connections 2048 --timeout 60s --drain 60s --slo "${slo_ms}ms" \
      --json "$work/load-$i.json" </dev/null >/dev/null &
    load_pids+=($!)
    pids+=($!)
  done
  for pid in "${load_pids[@]}"; do wait "$pid"; done
  pids=("${pids[@]:0:${#pids[@]}-2}")
  local parts
  parts="$(limit_in_force "${admin_ports[0]}")+$(limit_in_force "${admin_ports[1]}")"
  line=$(python3 - "$work/load-0.json" "$work/load-1.json" <<'PY'
import json, sys
runs = [json.load(open(p)) for p in sys.argv[1:]]
n = sum(r["requests"]["scheduled"] for r in runs)
ok = sum(r["status"].get("200", 0) for r in runs)
within = sum(r["requests"]["ok_within_slo"] for r in runs)
p99 = max(r["latency_ok_ms"]["p99"] for r in runs)
print(n, ok, n - ok, f"{within / max(ok, 1):.4f}", f"{within / max(n, 1):.4f}", f"{p99:.1f}")
PY
)
  echo "$mode $f $r $line $parts" >> "$work/results.txt"
  read -r n ok other ok_share share p99 <<<"$line"
  printf '  round %s %-8s %4s× (2 × %s req/s): %5s requests, %5s 200, %5s other; 200s p99 %s ms, %s within SLO; 200 within SLO: %s of all; limits in force at the end %s\n' \
    "$r" "$mode" "$f" "$rate" "$n" "$ok" "$other" "$p99" "$ok_share" "$share" "$parts" >&2
}

: > "$work/results.txt"
echo "measuring: GET /busy/$busy_ms on one replica ($capacity req/s) behind two gateways;" \
  "queue_limit $queue_limit_ms ms = $per_replica in flight; ${duration}s per run at" \
  "×($factors); $rounds round(s) ..." >&2
for r in $(seq 1 "$rounds"); do
  modes=(peer prescale)
  [ $((r % 2)) = 1 ] || modes=(prescale peer)
  for mode in "${modes[@]}"; do
    start_mode "$mode" "$r"
    for f in $factors; do
      run_load "$mode" "$f" "$r"
      sleep 1
    done
    stop_all
  done
done

# MODE FACTOR COLUMN: the median over rounds.
med() { median_of_rounds "$work/results.txt" "$@"; }
echo
echo "GET /busy/$busy_ms on one replica of concurrency 1 ($capacity req/s), behind two gateways" \
  "each loaded by its own \`prescale load --rate F×$capacity/2 --duration ${duration}s\`" \
  "(Poisson); SLO p99 $slo_ms ms; queue_limit $queue_limit_ms ms = $per_replica in flight per" \
  "replica; medians of $rounds round(s); $(nproc) cores"
echo
echo "| load | admission limit | in force at the end (gateway a + b) | requests | 200 | other | p99 of 200s | 200s within SLO | 200 within SLO, share of all |"
echo "|---|---|---|---|---|---|---|---|---|"
result=()
for f in $factors; do
  for mode in peer prescale; do
    what="$per_replica per gateway (the file's, each)"
    [ "$mode" = peer ] || what="$per_replica shared (the controller's parts)"
    in_force=$(awk -v m="$mode" -v f="$f" '$1 == m && $2 == f { print $10 }' "$work/results.txt" |
      sort | uniq -c | sort -rn | awk 'NR == 1 { print $2 }')
    printf '| %s× | %s | %s | %s | %s | %s | %s ms | %s | %s |\n' "$f" "$what" "$in_force" \
      "$(med "$mode" "$f" 4)" \
      "$(med "$mode" "$f" 5)" "$(med "$mode" "$f" 6)" "$(med "$mode" "$f" 9)" \
      "$(med "$mode" "$f" 7)" "$(med "$mode" "$f" 8)"
  done
  l=$(factor_label "$f")
  result+=("ok_within_slo_share_peer_$l=$(med peer "$f" 8)"
    "ok_within_slo_share_prescale_$l=$(med prescale "$f" 8)"
    "within_slo_share_peer_$l=$(med peer "$f" 7)" "within_slo_share_prescale_$l=$(med prescale "$f" 7)"
    "p99_ok_ms_peer_$l=$(med peer "$f" 9)" "p99_ok_ms_prescale_$l=$(med prescale "$f" 9)"
    "ratio_ok_within_slo_prescale_vs_peer_$l=$(ratio "$(med prescale "$f" 8)" "$(med peer "$f" 8)")")
done
echo
echo "RESULT ${result[*]} capacity_rps=$capacity queue_limit_per_replica=$per_replica"
