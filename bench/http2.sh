#!/usr/bin/env bash
# HTTP/2 clients through a reverse proxy (docs/http.md "HTTP/2"): h2load (nghttp2's load
# generator) opens --connections clear-text HTTP/2 connections with prior knowledge and keeps
# --streams requests in flight on each, against one `prescale serve echo` (GET / answers
# "hello") reached directly (it speaks HTTP/2 itself), through nginx (`listen ... http2`),
# haproxy (`bind ... proto h2`) and `prescale gateway`. Each proxy has one worker or thread and
# relays to the upstream over HTTP/1.1 with keep-alive, or with --upstream-h2 over HTTP/2 in clear
# text, as to a gRPC server (nginx `grpc_pass`, haproxy `proto h2` on the server line, the gateway
# with the service's `protocol: http2`); the paths run in alternating order round by round.
# Usage: bench/http2.sh [--rounds N] [--connections C] [--streams M] [--duration S]
#        [--upstream-h2]   (defaults 5, 8, 16, 4)
# Env: PRESCALE=path/to/prescale (default build/apps/prescale/prescale)
# Ends with a RESULT line: each path's median requests/s and mean time per request (ms), and the
# gateway's ratios to nginx.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

rounds=5
connections=8
streams=16
duration=4
upstream_h2=0
while [ $# -gt 0 ]; do
  case "$1" in
    --upstream-h2) upstream_h2=1; shift ;;
    --rounds) rounds=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --streams) streams=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
prescale=${PRESCALE:-build/apps/prescale/prescale}
require_prescale "$prescale"
require_tools scripts/install-deps nginx haproxy h2load python3

proxy_bench_setup

# --- the upstream ---------------------------------------------------------------------------------
start_echo_upstream "$prescale"

# --- nginx ----------------------------------------------------------------------------------------
nginx_port=$(free_port)
if [ "$upstream_h2" -eq 1 ]; then
  relay="grpc_pass grpc://backend;"
else
  relay='proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection "";'
fi
start_nginx nginx 1 "$(cat <<NGINX
  upstream backend { server 127.0.0.1:$up; keepalive 256; }
  server {
    listen 127.0.0.1:$nginx_port http2;
    http2_max_concurrent_streams 128;
    keepalive_requests 10000000;
    location / {
      $relay
    }
  }
NGINX
)"

# --- haproxy --------------------------------------------------------------------------------------
haproxy_port=$(free_port)
start_haproxy "$haproxy_port" "$up" "" "proto h2" "$([ "$upstream_h2" -eq 1 ] && echo "proto h2")"

# --- prescale gateway -----------------------------------------------------------------------------
printf 'version: 1\nservices:\n  - {name: echo, kind: builtin/echo, protocol: %s}\n' \
  "$([ "$upstream_h2" -eq 1 ] && echo http2 || echo http1)" > "$work/gateway.yaml"
setsid "$prescale" gateway -f "$work/gateway.yaml" --upstream "echo=127.0.0.1:$up" --port 0 --threads 1 \
  --port-file "$work/prescale.port" --admin-port -1 --log-level warn &
pids+=($!)
prescale_port=$(wait_port_file "$work/prescale.port")

names=(direct nginx haproxy prescale)
ports=("$up" "$nginx_port" "$haproxy_port" "$prescale_port")
for p in "${ports[@]}"; do
  for _ in $(seq 1 50); do
    h2load -n 1 -c 1 "http://127.0.0.1:$p/" 2>/dev/null | grep -q "1 succeeded" && break
    sleep 0.1
  done
done

for r in $(seq 1 "$rounds"); do
  order=(0 1 2 3)
  [ $((r % 2)) -eq 0 ] && order=(3 2 1 0)
  for i in "${order[@]}"; do
    out=$(h2load -t 1 -c "$connections" -m "$streams" -D "$duration" "http://127.0.0.1:${ports[$i]}/")
    rate=$(sed -nE 's/^finished in [^,]+, ([0-9.]+) req\/s.*/\1/p' <<<"$out")
    failed=$(sed -nE 's/^requests: .* ([0-9]+) failed.*/\1/p' <<<"$out")
    mean=$(awk '/^time for request:/ { print $6 }' <<<"$out")
    non2xx=$(sed -nE 's/^status codes: [0-9]+ 2xx, ([0-9]+) 3xx, ([0-9]+) 4xx, ([0-9]+) 5xx.*/\1 \2 \3/p' <<<"$out")
    # Requests still in flight when the duration ends count as failed: at most one per stream.
    if [ "${failed:-1}" -gt $((connections * streams)) ] || [ "$non2xx" != "0 0 0" ]; then
      echo "${names[$i]}: $failed failed, 3xx/4xx/5xx $non2xx" >&2
      exit 1
    fi
    printf '%s %s %s\n' "${names[$i]}" "$rate" "$(to_ms "$mean")" | tee -a "$work/rounds"
  done
done

med() { awk -v n="$1" -v c="$2" '$1 == n { print $c }' "$work/rounds" | median; }
echo
printf '%-10s %14s %14s\n' path "requests/s" "mean ms"
for n in "${names[@]}"; do printf '%-10s %14s %14s\n' "$n" "$(med "$n" 2)" "$(med "$n" 3)"; done
echo "RESULT prescale_requests_per_s=$(med prescale 2) nginx_requests_per_s=$(med nginx 2)" \
  "haproxy_requests_per_s=$(med haproxy 2) direct_requests_per_s=$(med direct 2)" \
  "prescale_mean_ms=$(med prescale 3) nginx_mean_ms=$(med nginx 3) haproxy_mean_ms=$(med haproxy 3)" \
  "rate_ratio_vs_nginx=$(ratio "$(med prescale 2)" "$(med nginx 2)")" \
  "mean_ratio_vs_nginx=$(ratio "$(med prescale 3)" "$(med nginx 3)")"
