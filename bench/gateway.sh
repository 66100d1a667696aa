#!/usr/bin/env bash
# Reverse-proxy throughput and latency: nginx (proxy_pass to an upstream block with keepalive),
# haproxy (http mode, keep-alive to the servers) and `prescale gateway`, in front of the same two
# upstream instances, on the same machine, with the same wrk settings, rounds alternating in one
# run. Every proxy adds the same fields (X-Forwarded-For/-Proto/-Host and a request id), as a
# production configuration would.
# Every server starts in its own session (setsid) so the kernel's per-session CPU grouping treats
# them alike; ports are picked free at run time; everything started is stopped on exit. Even
# rounds run the proxies in the reverse order.
# Prints req/s, p50 and p99 per round and proxy, the medians, and a RESULT line with the ratios
# (of the medians, and paired: the median of the per-round ratios to nginx).
#
# Usage: bench/gateway.sh [--rounds N] [--duration SECONDS] [--connections N] [--threads N]
#                         [--proxy-threads N] [--upstream echo|nginx] [--tracing RATIO] [--tls]
#   --upstream echo   two `prescale serve echo` instances (GET / answers "hello"), the default
#   --upstream nginx  one nginx with two ports answering "hello" (a cheaper upstream)
#   --tracing RATIO   a fourth proxy in the same rounds: `prescale gateway` recording a span of
#                     RATIO of the requests (docs/tracing.md) and sending them over OTLP/HTTP to
#                     an nginx that takes them (answers 200); the RESULT line adds its ratios to
#                     the gateway without tracing and the spans it sent and dropped
#   --tls             every proxy terminates HTTPS (TLS 1.3, one self-signed EC P-256 certificate
#                     made for the run with openssl; nginx `listen ... ssl`, haproxy `bind ... ssl`,
#                     `prescale gateway --tls-cert/--tls-key`); wrk connects over https and keeps its
#                     connections, so this is the cost of the records, not of handshakes
# Env:   PRESCALE=path/to/prescale (default build/apps/prescale/prescale)
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3 duration=8 connections=64 wrk_threads=2 proxy_threads=$(nproc) upstream_kind=echo
tracing="" tls=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --threads) wrk_threads=$2; shift 2 ;;
    --proxy-threads) proxy_threads=$2; shift 2 ;;
    --upstream) upstream_kind=$2; shift 2 ;;
    --tracing) tracing=$2; shift 2 ;;
    --tls) tls=1; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
case "$upstream_kind" in echo|nginx) ;; *) echo "--upstream: echo or nginx" >&2; exit 2 ;; esac
prescale=${PRESCALE:-build/apps/prescale/prescale}
# shellcheck source=bench/lib.sh
. bench/lib.sh
require_tools "scripts/install-deps" nginx haproxy wrk curl python3 openssl
require_prescale "$prescale"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# --- TLS (--tls): one certificate for every proxy ---------------------------------------------
scheme=http nginx_ssl="" haproxy_ssl="" prescale_tls=()
if [ -n "$tls" ]; then
  scheme=https
  mkdir -p "$work/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj /CN=localhost -keyout "$work/tls/key.pem" -out "$work/tls/cert.pem" 2>/dev/null
  cat "$work/tls/cert.pem" "$work/tls/key.pem" > "$work/tls/haproxy.pem"
  nginx_ssl=" ssl;
    ssl_certificate $work/tls/cert.pem;
    ssl_certificate_key $work/tls/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3"
  haproxy_ssl=" ssl crt $work/tls/haproxy.pem alpn http/1.1"
  prescale_tls=(--tls-cert "$work/tls/cert.pem" --tls-key "$work/tls/key.pem")
fi

# --- the two upstream instances -----------------------------------------------------------------
if [ "$upstream_kind" = echo ]; then
  for i in 1 2; do
    setsid "$prescale" serve echo --port 0 --threads 1 --port-file "$work/up$i.port" \
      --log-level warn &
    pids+=($!)
  done
  for i in 1 2; do
    for _ in $(seq 1 100); do [ -s "$work/up$i.port" ] && break; sleep 0.1; done
  done
  up1=$(cat "$work/up1.port"); up2=$(cat "$work/up2.port")
else
  up1=$(free_port); up2=$(free_port)
  start_nginx upstream 1 "$(cat <<NGINX
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$up1;
    listen 127.0.0.1:$up2;
    location / { default_type text/plain; return 200 "hello"; }
  }
NGINX
)"
fi
wait_for "http://127.0.0.1:$up1/"; wait_for "http://127.0.0.1:$up2/"

# --- nginx ------------------------------------------------------------------------------------
nginx_port=$(free_port)
start_nginx nginx "$proxy_threads" "$(cat <<NGINX
  keepalive_requests 1000000;
  upstream backend {
    server 127.0.0.1:$up1;
    server 127.0.0.1:$up2;
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$nginx_port$nginx_ssl;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$host;
      proxy_set_header X-Request-Id \$request_id;
    }
  }
NGINX
)"

# --- haproxy ----------------------------------------------------------------------------------
haproxy_port=$(free_port)
cat > "$work/haproxy.cfg" <<HAPROXY
global
  nbthread $proxy_threads
  maxconn 4096
defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 60s
frontend gateway
  bind 127.0.0.1:$haproxy_port$haproxy_ssl
  option forwardfor
  unique-id-format %{+X}o\ %ci:%cp_%fi:%fp_%Ts_%rt:%pid
  http-request set-header X-Forwarded-Proto $scheme
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-request set-header X-Request-Id %[unique-id]
  default_backend upstreams
backend upstreams
  balance roundrobin
  server up1 127.0.0.1:$up1
  server up2 127.0.0.1:$up2
HAPROXY
setsid /usr/sbin/haproxy -f "$work/haproxy.cfg" -db &
pids+=($!)

# --- prescale gateway -------------------------------------------------------------------------
setsid "$prescale" gateway --upstream "echo=127.0.0.1:$up1,127.0.0.1:$up2" --port 0 \
  --port-file "$work/prescale.port" --threads "$proxy_threads" --admin-port -1 --log-level warn \
  "${prescale_tls[@]}" &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/prescale.port" ] && break; sleep 0.1; done
prescale_port=$(cat "$work/prescale.port")

names=(nginx haproxy prescale)
ports=("$nginx_port" "$haproxy_port" "$prescale_port")

# --- prescale gateway with tracing (--tracing) ------------------------------------------------
if [ -n "$tracing" ]; then
  sink_port=$(free_port)
  start_nginx sink 1 "$(cat <<NGINX
  client_max_body_size 64m;
  client_body_buffer_size 4m;
  server {
    listen 127.0.0.1:$sink_port;
    location /v1/traces { default_type application/x-protobuf; return 200 ""; }
  }
NGINX
)"
  OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$sink_port" \
    OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG="$tracing" \
    setsid "$prescale" gateway --upstream "echo=127.0.0.1:$up1,127.0.0.1:$up2" --port 0 \
    --port-file "$work/traced.port" --threads "$proxy_threads" --admin-port 0 \
    --admin-port-file "$work/traced.admin" --log-level warn "${prescale_tls[@]}" &
  pids+=($!)
  for _ in $(seq 1 100); do [ -s "$work/traced.admin" ] && break; sleep 0.1; done
  names+=(traced)
  ports+=("$(cat "$work/traced.port")")
fi
for p in "${ports[@]}"; do
  for _ in $(seq 1 100); do curl -ksf -o /dev/null "$scheme://127.0.0.1:$p/" && break; sleep 0.1; done
  [ "$(curl -ksfS "$scheme://127.0.0.1:$p/")" = hello ] || { echo "port $p: unexpected answer" >&2; exit 1; }
done

run_wrk() {  # PORT [SCHEME]: "req/s p50_ms p99_ms"
  wrk -t"$wrk_threads" -c"$connections" -d"${duration}s" --latency "${2:-$scheme}://127.0.0.1:$1/" |
    wrk_stats "port $1"
}

# Reference: one upstream instance straight, to see whether the upstreams bound the proxies.
direct=$(run_wrk "$up1" http)
for p in "${ports[@]}"; do wrk -t1 -c8 -d1s "$scheme://127.0.0.1:$p/" >/dev/null; done
for n in "${names[@]}"; do : > "$work/$n.txt"; done

echo "wrk -t$wrk_threads -c$connections -d${duration}s --latency, $rounds rounds; proxies with $proxy_threads workers/threads; upstream: 2 × $upstream_kind; $(nproc) cores; clients over $scheme"
echo "one upstream instance direct: $(cut -d' ' -f1 <<<"$direct") req/s, p99 $(cut -d' ' -f3 <<<"$direct") ms"
printf '%-6s %-9s %12s %10s %10s\n' round proxy req/s p50_ms p99_ms
for r in $(seq 1 "$rounds"); do
  # Even rounds run the proxies in reverse, so a machine that drifts during the run favours none
  # (in a fixed order the gateway always ran two runs after nginx, in every paired ratio).
  order=($(seq 0 $((${#names[@]} - 1))))
  [ $((r % 2)) = 1 ] || order=($(seq $((${#names[@]} - 1)) -1 0))
  for i in "${order[@]}"; do
    stats=$(run_wrk "${ports[$i]}")
    read -r rps p50 p99 <<<"$stats"
    echo "$rps $p50 $p99" >> "$work/${names[$i]}.txt"
    printf '%-6s %-9s %12s %10s %10s\n' "$r" "${names[$i]}" "$rps" "$p50" "$p99"
  done
done

declare -A m_rps m_p50 m_p99
echo
printf '%-9s %12s %10s %10s\n' median req/s p50_ms p99_ms
for n in "${names[@]}"; do
  m_rps[$n]=$(cut -d' ' -f1 "$work/$n.txt" | median)
  m_p50[$n]=$(cut -d' ' -f2 "$work/$n.txt" | median)
  m_p99[$n]=$(cut -d' ' -f3 "$work/$n.txt" | median)
  printf '%-9s %12s %10s %10s\n' "$n" "${m_rps[$n]}" "${m_p50[$n]}" "${m_p99[$n]}"
done
# Paired: the median over rounds of prescale's figure over nginx's in the same round (the two run
# minutes apart at most, first and last in turn, so a slow drift of the machine cancels out).
paired() {  # COLUMN (1 req/s, 3 p99) [OF [TO]]: OF's figure over TO's (prescale, nginx)
  paste -d' ' <(cut -d' ' -f"$1" "$work/${2:-prescale}.txt") \
    <(cut -d' ' -f"$1" "$work/${3:-nginx}.txt") | awk '{ printf "%.4f\n", $1 / $2 }' | median
}
echo "paired (median of per-round ratios): req/s $(paired 1)× nginx, p99 $(paired 3)× nginx"
traced_result=""
if [ -n "$tracing" ]; then
  metrics=$(curl -fsS "http://127.0.0.1:$(cat "$work/traced.admin")/metrics")
  exported=$(awk '/^prescale_tracing_spans_exported_total/ { print $2 }' <<<"$metrics")
  dropped=$(awk '/^prescale_tracing_spans_dropped_total/ { s += $2 } END { print s + 0 }' <<<"$metrics")
  echo "traced (ratio $tracing): req/s $(paired 1 traced prescale)× untraced," \
    "p99 $(paired 3 traced prescale)× untraced; spans exported $exported, dropped $dropped"
  traced_result="tracing_ratio=$tracing rps_ratio_traced_vs_untraced_paired=$(paired 1 traced prescale)"
  traced_result+=" p99_ratio_traced_vs_untraced_paired=$(paired 3 traced prescale)"
  traced_result+=" rps_ratio_traced_vs_nginx_paired=$(paired 1 traced nginx)"
  traced_result+=" spans_exported=${exported:-0} spans_dropped=$dropped"
fi
echo "RESULT rps_ratio_vs_nginx=$(ratio "${m_rps[prescale]}" "${m_rps[nginx]}")" \
  "rps_ratio_vs_nginx_paired=$(paired 1) p99_ratio_vs_nginx_paired=$(paired 3)" \
  "p99_ratio_vs_nginx=$(ratio "${m_p99[prescale]}" "${m_p99[nginx]}")" \
  "rps_ratio_vs_haproxy=$(ratio "${m_rps[prescale]}" "${m_rps[haproxy]}")" \
  "p99_ratio_vs_haproxy=$(ratio "${m_p99[prescale]}" "${m_p99[haproxy]}")" \
  "prescale_rps=${m_rps[prescale]} nginx_rps=${m_rps[nginx]} haproxy_rps=${m_rps[haproxy]}" \
  "prescale_p99_ms=${m_p99[prescale]} nginx_p99_ms=${m_p99[nginx]} haproxy_p99_ms=${m_p99[haproxy]}" \
  "scheme=$scheme" $traced_result
