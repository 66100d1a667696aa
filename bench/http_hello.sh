#!/usr/bin/env bash
# Tiny-response HTTP throughput: nginx (`return 200 "hello"`) vs `prescale serve echo` (GET /
# answers "hello"), same machine, same wrk settings, alternating rounds in one run (nginx first in
# odd rounds, prescale first in even ones).
# Both servers start in their own session (setsid) so the kernel's per-session CPU grouping
# treats them alike.
# Prints requests/s and p99 per round, the medians and their ratios, and a RESULT line.
#
# Usage: bench/http_hello.sh [--rounds N] [--duration SECONDS] [--connections N] [--threads N]
# Env:   PRESCALE=path/to/prescale (default build/apps/prescale/prescale)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

rounds=3 duration=10 connections=64 wrk_threads=2 server_threads=$(nproc)
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --threads) wrk_threads=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
prescale=${PRESCALE:-build/apps/prescale/prescale}
require_tools "scripts/install-deps" nginx wrk curl
require_prescale "$prescale"

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

nginx_port=$(free_port)
mkdir -p "$work/nginx/logs"
cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes $server_threads;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:$nginx_port;
    location / { default_type text/plain; return 200 "hello"; }
  }
}
NGINX
setsid /usr/sbin/nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
pids+=($!)

setsid "$prescale" serve echo --port 0 --threads "$server_threads" --port-file "$work/prescale.port" \
  --log-level warn &
pids+=($!)

for _ in $(seq 1 100); do
  [ -s "$work/prescale.port" ] && curl -fsS "http://127.0.0.1:$nginx_port/" >/dev/null 2>&1 && break
  sleep 0.1
done
prescale_port=$(cat "$work/prescale.port")
[ "$(curl -fsS "http://127.0.0.1:$prescale_port/")" = hello ] || { echo "prescale not answering" >&2; exit 1; }
[ "$(curl -fsS "http://127.0.0.1:$nginx_port/")" = hello ] || { echo "nginx not answering" >&2; exit 1; }

run_wrk() {  # PORT: "req/s p50_ms p99_ms"; warns when some answers were not 2xx or sockets failed
  wrk -t"$wrk_threads" -c"$connections" -d"${duration}s" --latency "http://127.0.0.1:$1/" |
    wrk_stats "port $1"
}

# Warm both up, then alternate, the first server in turn, so machine noise and drift hit both
# alike.
wrk -t1 -c8 -d1s "http://127.0.0.1:$nginx_port/" >/dev/null
wrk -t1 -c8 -d1s "http://127.0.0.1:$prescale_port/" >/dev/null
: > "$work/nginx.txt"; : > "$work/prescale.txt"
echo "wrk -t$wrk_threads -c$connections -d${duration}s --latency, $rounds rounds, servers with $server_threads threads/workers"
printf '%-6s %-9s %12s %10s\n' round server req/s p99_ms
for r in $(seq 1 "$rounds"); do
  servers=(nginx prescale)
  [ $((r % 2)) = 1 ] || servers=(prescale nginx)
  for server in "${servers[@]}"; do
    port=$nginx_port
    [ "$server" = nginx ] || port=$prescale_port
    stats=$(run_wrk "$port"); read -r rps _ p99 <<<"$stats"; echo "$rps $p99" >> "$work/$server.txt"
    printf '%-6s %-9s %12s %10s\n' "$r" "$server" "$rps" "$p99"
  done
done

n_rps=$(cut -d' ' -f1 "$work/nginx.txt" | median); n_p99=$(cut -d' ' -f2 "$work/nginx.txt" | median)
p_rps=$(cut -d' ' -f1 "$work/prescale.txt" | median); p_p99=$(cut -d' ' -f2 "$work/prescale.txt" | median)
rps_ratio=$(ratio "$p_rps" "$n_rps")
p99_ratio=$(ratio "$p_p99" "$n_p99")
echo "median  nginx     $n_rps req/s  p99 ${n_p99} ms"
echo "median  prescale  $p_rps req/s  p99 ${p_p99} ms"
echo "RESULT rps_ratio_vs_nginx=$rps_ratio p99_ratio_vs_nginx=$p99_ratio prescale_rps=$p_rps nginx_rps=$n_rps prescale_p99_ms=$p_p99 nginx_p99_ms=$n_p99"
