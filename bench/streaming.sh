#!/usr/bin/env bash
# Streamed responses through a reverse proxy (docs/gateway.md "Streamed responses"): server-sent
# events from one `prescale serve echo` (GET /events/{n}) through nginx as configured by default
# (proxy_buffering on), nginx with `proxy_buffering off` (what SSE behind nginx needs), haproxy,
# and `prescale gateway`, each with the same upstream, in alternating order round by round.
#
# Two figures per proxy and round:
#   first event  a client asks for 5 events 250 ms apart and times the first event's arrival
#                (ms from sending the request; the upstream sends it at once)
#   throughput   `curl` reads one stream of 4,000 events of 8 KiB sent back to back (32 MB) and
#                its MB/s are counted
# Usage: bench/streaming.sh [--rounds N]   (default 5)
# Env: PRESCALE=path/to/prescale (default build/apps/prescale/prescale)
# Ends with a RESULT line: the gateway's median first event (ms) and MB/s, those of nginx (both
# ways) and haproxy, and the gateway's ratios to unbuffered nginx.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

rounds=5
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
prescale=${PRESCALE:-build/apps/prescale/prescale}
require_prescale "$prescale"
require_tools scripts/install-deps nginx haproxy curl python3

proxy_bench_setup

# --- the upstream ---------------------------------------------------------------------------------
start_echo_upstream "$prescale"

# --- nginx, buffered (its default) and not --------------------------------------------------------
# NAME PORT BUFFERING(on|off): an nginx proxying PORT to the upstream.
start_proxy_nginx() {
  start_nginx "$1" 1 "$(cat <<NGINX
  upstream backend { server 127.0.0.1:$up; keepalive 16; }
  server {
    listen 127.0.0.1:$2;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering $3;
    }
  }
NGINX
)"
}
nginx_port=$(free_port)
start_proxy_nginx nginx "$nginx_port" on
nginx_unbuffered_port=$(free_port)
start_proxy_nginx nginx_unbuffered "$nginx_unbuffered_port" off

# --- haproxy --------------------------------------------------------------------------------------
haproxy_port=$(free_port)
start_haproxy "$haproxy_port" "$up"

# --- prescale gateway -----------------------------------------------------------------------------
setsid "$prescale" gateway --upstream "echo=127.0.0.1:$up" --port 0 --threads 1 \
  --port-file "$work/prescale.port" --admin-port -1 --log-level warn &
pids+=($!)
prescale_port=$(wait_port_file "$work/prescale.port")

names=(nginx nginx_unbuffered haproxy prescale)
ports=("$nginx_port" "$nginx_unbuffered_port" "$haproxy_port" "$prescale_port")
for p in "${ports[@]}"; do wait_for "http://127.0.0.1:$p/"; done

# PORT: ms from sending a request for 5 events 250 ms apart to the first event's arrival.
first_event_ms() {
  python3 - "$1" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
start = time.monotonic()
s.sendall(b"GET /events/5?interval_ms=250 HTTP/1.1\r\nHost: bench\r\n\r\n")
got = b""
while b"data: 0" not in got:
    chunk = s.recv(65536)
    if not chunk:
        sys.exit("the connection closed before the first event")
    got += chunk
print("%.3f" % ((time.monotonic() - start) * 1000))
while not got.endswith(b"0\r\n\r\n"):  # the rest, to the last chunk: the stream completes
    chunk = s.recv(65536)
    if not chunk:
        break
    got += chunk
PY
}

# PORT: MB/s of one stream of 4,000 events of 8 KiB sent back to back.
stream_mbps() {
  curl -s -o /dev/null --max-time 60 -w '%{size_download} %{time_total}\n' \
    "http://127.0.0.1:$1/events/4000?interval_ms=0&bytes=8192" |
    awk -v port="$1" '{ if ($1 < 32000000) { print "port " port ": short stream: " $1 " bytes" > "/dev/stderr"; exit 1 }
           printf "%.1f\n", $1 / $2 / 1e6 }'
}

for r in $(seq 1 "$rounds"); do
  order=(0 1 2 3)
  [ $((r % 2)) -eq 0 ] && order=(3 2 1 0)
  for i in "${order[@]}"; do
    ms=$(first_event_ms "${ports[$i]}")
    mbps=$(stream_mbps "${ports[$i]}")
    printf '%s %s %s\n' "${names[$i]}" "$ms" "$mbps" | tee -a "$work/rounds"
  done
done

med() { awk -v n="$1" -v c="$2" '$1 == n { print $c }' "$work/rounds" | median; }
echo
printf '%-18s %16s %12s\n' proxy "first event ms" "MB/s"
for n in "${names[@]}"; do printf '%-18s %16s %12s\n' "$n" "$(med "$n" 2)" "$(med "$n" 3)"; done
echo "RESULT prescale_first_event_ms=$(med prescale 2) nginx_first_event_ms=$(med nginx 2)" \
  "nginx_unbuffered_first_event_ms=$(med nginx_unbuffered 2) haproxy_first_event_ms=$(med haproxy 2)" \
  "prescale_mbps=$(med prescale 3) nginx_mbps=$(med nginx 3) nginx_unbuffered_mbps=$(med nginx_unbuffered 3)" \
  "haproxy_mbps=$(med haproxy 3)" \
  "mbps_ratio_vs_nginx_unbuffered=$(ratio "$(med prescale 3)" "$(med nginx_unbuffered 3)")"
