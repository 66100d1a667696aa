#!/usr/bin/env bash
# WebSocket through a reverse proxy (docs/gateway.md "WebSocket"): one `prescale serve echo`
# (GET /ws echoes each message) reached directly, through nginx (configured for WebSocket as its
# documentation says: `Upgrade` and `Connection` passed on), haproxy (WebSocket by default) and
# `prescale gateway`, each proxy with one worker or thread, in alternating order round by round.
#
# build/bench/ws_load keeps --connections WebSockets busy (closed loop: a message of --bytes,
# then its echo, then the next) for --duration seconds and counts the messages echoed per second
# and each round trip's p50 and p99.
# Usage: bench/websocket.sh [--rounds N] [--connections C] [--duration S] [--bytes B]
#        (defaults 5, 16, 4, 64)
# Env: PRESCALE=path/to/prescale (default build/apps/prescale/prescale),
#      WS_LOAD=path/to/ws_load (default build/bench/ws_load)
# Ends with a RESULT line: each path's median messages/s and p99 (µs), and the gateway's ratios
# to nginx.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

rounds=5
connections=16
duration=4
bytes=64
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --bytes) bytes=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
prescale=${PRESCALE:-build/apps/prescale/prescale}
ws_load=${WS_LOAD:-build/bench/ws_load}
require_prescale "$prescale"
require_prescale "$ws_load"
require_tools scripts/install-deps nginx haproxy python3

proxy_bench_setup

# --- the upstream ---------------------------------------------------------------------------------
start_echo_upstream "$prescale"

# --- nginx ----------------------------------------------------------------------------------------
nginx_port=$(free_port)
start_nginx nginx 1 "$(cat <<NGINX
  map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
  upstream backend { server 127.0.0.1:$up; keepalive 16; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_read_timeout 300s;
    }
  }
NGINX
)"

# --- haproxy --------------------------------------------------------------------------------------
haproxy_port=$(free_port)
start_haproxy "$haproxy_port" "$up" "  timeout tunnel 300s"

# --- prescale gateway -----------------------------------------------------------------------------
setsid "$prescale" gateway --upstream "echo=127.0.0.1:$up" --port 0 --threads 1 \
  --port-file "$work/prescale.port" --admin-port -1 --log-level warn &
pids+=($!)
prescale_port=$(wait_port_file "$work/prescale.port")

names=(direct nginx haproxy prescale)
ports=("$up" "$nginx_port" "$haproxy_port" "$prescale_port")
for p in "${ports[@]}"; do wait_for "http://127.0.0.1:$p/"; done

for r in $(seq 1 "$rounds"); do
  order=(0 1 2 3)
  [ $((r % 2)) -eq 0 ] && order=(3 2 1 0)
  for i in "${order[@]}"; do
    line=$("$ws_load" --port "${ports[$i]}" --connections "$connections" --duration "$duration" \
      --bytes "$bytes")
    rate=$(sed -E 's/.*messages_per_s=([0-9.]+).*/\1/' <<<"$line")
    p99=$(sed -E 's/.*p99_us=([0-9.]+).*/\1/' <<<"$line")
    printf '%s %s %s\n' "${names[$i]}" "$rate" "$p99" | tee -a "$work/rounds"
  done
done

med() { awk -v n="$1" -v c="$2" '$1 == n { print $c }' "$work/rounds" | median; }
echo
printf '%-10s %14s %10s\n' path "messages/s" "p99 µs"
for n in "${names[@]}"; do printf '%-10s %14s %10s\n' "$n" "$(med "$n" 2)" "$(med "$n" 3)"; done
echo "RESULT prescale_messages_per_s=$(med prescale 2) nginx_messages_per_s=$(med nginx 2)" \
  "haproxy_messages_per_s=$(med haproxy 2) direct_messages_per_s=$(med direct 2)" \
  "prescale_p99_us=$(med prescale 3) nginx_p99_us=$(med nginx 3) haproxy_p99_us=$(med haproxy 3)" \
  "rate_ratio_vs_nginx=$(ratio "$(med prescale 2)" "$(med nginx 2)")" \
  "p99_ratio_vs_nginx=$(ratio "$(med prescale 3)" "$(med nginx 3)")"
