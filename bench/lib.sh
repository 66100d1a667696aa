# shellcheck shell=bash
# Shell functions shared by the bench/ scripts. Source it; it defines functions only.
# Every function that starts nothing is safe in a `set -euo pipefail` script.

# HOW TOOL...: exits naming the first tool (a command, or a program in /usr/sbin) this machine
# lacks, and HOW to get it ("scripts/install-deps").
require_tools() {
  local how=$1 tool
  shift
  for tool in "$@"; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] ||
      { echo "missing $tool: run $how" >&2; exit 1; }
  done
}

# DATA: the shared traces the autoscaling benches run on, one per line: every file in
# DATA/traces/, and one NAB realTweets series (5-minute tweet volumes) when it is there. Exits
# naming the directory when DATA/traces is missing.
shared_traces() {
  [ -d "$1/traces" ] || { echo "missing $1/traces: the shared data directory" >&2; exit 1; }
  local t
  for t in "$1"/traces/*.csv; do echo "$t"; done
  if [ -f "$1/nab/data/realTweets/Twitter_volume_AMZN.csv" ]; then
    echo "$1/nab/data/realTweets/Twitter_volume_AMZN.csv"
  fi
}

# PRESCALE: exits when that binary is not built.
require_prescale() { [ -x "$1" ] || { echo "missing $1: run make build" >&2; exit 1; }; }

# The simulator benches' start: sets `prescale` and `data` (from PRESCALE and PRESCALE_DATA_DIR,
# else build/apps/prescale/prescale and ../shared/data), checks them and python3, lists the shared
# traces in the array `traces`, and makes a folder `work` removed at exit.
sim_bench_setup() {
  prescale=${PRESCALE:-build/apps/prescale/prescale}
  data=${PRESCALE_DATA_DIR:-../shared/data}
  require_prescale "$prescale"
  require_tools scripts/install-deps python3
  local list
  list=$(shared_traces "$data")
  mapfile -t traces <<<"$list"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
}

# FILE MODE FACTOR COLUMN: the median over a bench's rounds of COLUMN, in the lines of FILE that
# begin "MODE FACTOR".
median_of_rounds() { awk -v m="$2" -v f="$3" -v c="$4" '$1 == m && $2 == f { print $c }' "$1" | median; }

# FACTOR as part of a RESULT key: 1.5 -> 1_5x.
factor_label() { tr . _ <<<"${1}x"; }

# A TCP port free on 127.0.0.1 now (another process may take it before the caller binds it).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# URL [SECONDS]: returns once it answers 2xx, exits the script after SECONDS (default 10; a peer
# that trains its model at startup takes longer).
wait_for() {
  local tries=$(( ${2:-10} * 10 ))
  for _ in $(seq 1 "$tries"); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "not answering: $1" >&2; exit 1
}

# FILE written by `--port-file`: prints the port once the file is there, exits the script after
# SECONDS (default 30; loading a large model takes a while).
wait_port_file() {
  local tries=$(( ${2:-30} * 10 ))
  for _ in $(seq 1 "$tries"); do [ -s "$1" ] && { cat "$1"; return 0; }; sleep 0.1; done
  echo "no port written to $1" >&2; exit 1
}

# wrk's latency figure ("812.00us", "1.23ms", "2.01s") in milliseconds.
to_ms() { awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.3f", n }'; }

# Numbers on stdin, one a line: their median.
median() { sort -g | awk '{a[NR]=$1} END { if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2 }'; }

# wrk --latency output on stdin: prints "req/s p50_ms p99_ms"; warns on stderr, naming LABEL,
# when some responses were not 2xx/3xx or sockets failed; fails when wrk printed no figures (it
# could not connect, or did not run), so capture it with an assignment (`s=$(... | wrk_stats)`),
# whose status `set -e` sees, not inside `read <<<"$(...)"`, whose status it does not.
wrk_stats() {
  local out rps p50 p99 errors
  out=$(cat)
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx or 3xx responses:/ {print "non-2xx=" $NF} /Socket errors:/ {print "socket_errors"}' <<<"$out" | tr '\n' ' ')
  [ -z "$errors" ] || echo "warning: ${1:-wrk}: $errors" >&2
  if [ -z "$rps" ] || [ -z "$p50" ] || [ -z "$p99" ]; then
    echo "${1:-wrk}: wrk printed no requests/s or latency percentiles" >&2
    return 1
  fi
  echo "$rps $(to_ms "$p50") $(to_ms "$p99")"
}

# A / B with 3 decimals, or "na" when either is not a number or B is 0 (a figure not measured).
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    num = "^[0-9.]+([eE][-+]?[0-9]+)?$"
    if (a !~ num || b !~ num || b + 0 == 0) print "na"; else printf "%.3f\n", a / b }'
}

# BODY_FILE: prints a wrk script that POSTs that JSON body to the URL's path.
post_lua() {
  cat <<LUA
local f = assert(io.open("$1", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
LUA
}

# Stops the `prescale up` whose pid is in $up_pid (SIGINT: its graceful stop), waits for it and
# clears up_pid; nothing when up_pid is empty.
stop_platform() {
  [ -n "${up_pid:-}" ] || return 0
  kill -INT "$up_pid" 2>/dev/null || true
  wait "$up_pid" 2>/dev/null || true
  up_pid=""
}

# DIR: nginx's temporary paths under DIR, as lines of its http block (so that it writes nothing
# outside the bench's folder).
# For the proxy benches: makes $work, the folder their processes share, and at exit stops the
# processes in `pids` (each its process group) and removes it. $work is 0755: nginx writes a
# buffered body that outgrows its memory buffers to proxy_temp_path as its worker user, and
# mktemp's 0700 would refuse it (and cut the body).
proxy_bench_setup() {
  work=$(mktemp -d)
  chmod 755 "$work"
  pids=()
  trap proxy_bench_cleanup EXIT
}
proxy_bench_cleanup() {
  for p in "${pids[@]}"; do kill -- -"$p" 2>/dev/null || kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}

# PRESCALE: starts one `prescale serve echo` (one thread) in $work, adds it to `pids`, and sets
# `up` to its port once it answers.
start_echo_upstream() {
  setsid "$1" serve echo --port 0 --threads 1 --port-file "$work/up.port" --log-level warn &
  pids+=($!)
  up=$(wait_port_file "$work/up.port")
  wait_for "http://127.0.0.1:$up/"
}

nginx_temp_paths() {
  cat <<NGINX
  client_body_temp_path $1/body;
  proxy_temp_path $1/proxy;
  fastcgi_temp_path $1/fastcgi;
  uwsgi_temp_path $1/uwsgi;
  scgi_temp_path $1/scgi;
NGINX
}

# NAME WORKERS BODY: starts an nginx in $work/NAME (the caller's folder) with WORKERS worker
# processes, the settings every bench's nginx shares, and BODY (the http block's own directives
# and servers), and adds its pid to the caller's array `pids`. An nginx that buffers bodies to
# its temporary files writes them as its worker user: $work must be readable by it (0755).
start_nginx() {  # NAME WORKERS BODY
  mkdir -p "$work/$1/logs"
  cat > "$work/$1/nginx.conf" <<NGINX
worker_processes $2;
daemon off;
pid $work/$1/nginx.pid;
error_log $work/$1/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
$(nginx_temp_paths "$work/$1")
$3
}
NGINX
  setsid /usr/sbin/nginx -p "$work/$1" -c "$work/$1/nginx.conf" &
  pids+=($!)
}

# PORT UPSTREAM_PORT [DEFAULTS] [BIND_OPTIONS]: starts a one-thread haproxy in $work on PORT
# proxying to UPSTREAM_PORT, with its documented defaults and DEFAULTS (lines of its defaults
# section), BIND_OPTIONS after its bind address (`proto h2`), and adds its pid to the caller's
# array `pids`.
start_haproxy() {  # PORT UPSTREAM_PORT [DEFAULTS] [BIND_OPTIONS] [SERVER_OPTIONS]
  cat > "$work/haproxy.cfg" <<HAPROXY
global
  nbthread 1
defaults
  mode http
  option http-keep-alive
  timeout connect 2s
  timeout client 30s
  timeout server 30s
${3:-}
frontend gateway
  bind 127.0.0.1:$1 ${4:-}
  default_backend upstreams
backend upstreams
  server up 127.0.0.1:$2 ${5:-}
HAPROXY
  setsid /usr/sbin/haproxy -f "$work/haproxy.cfg" -db &
  pids+=($!)
}
