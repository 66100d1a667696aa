#!/usr/bin/env bash
# The AI services over HTTP: for each endpoint of `prescale serve recommend`, `serve fraud` and
# `serve forecast`, the peak requests/s under wrk at a fixed concurrency (closed loop), then the
# latency at a fixed fraction of that peak (default 50 %) from `prescale load` (open loop, latency
# measured from each request's scheduled time, so queueing shows). Each figure is the median of
# --rounds runs. Models are trained into a temporary directory from ../shared/data first.
#
# Requests (inputs read from the shared data at run time, nothing copied into the repository):
#   recommend  GET /v1/users/{1..610}/recommendations?k=10      (MovieLens small's users)
#              GET /v1/items/{id}/similar?k=10                  (the 50 most-rated movies)
#              POST /v1/interactions {"user": 1..610, "item": 2571}
#   fraud      POST /v1/score        the first transaction of the shared CSV
#              POST /v1/score:batch  its first 100 transactions
#   forecast   POST /v1/forecast     14 days of 1-minute NASA requests (20,160 points, the
#                                    history the service keeps and docs/services/forecast.md's
#                                    example), horizon 15: a full fit per request
#              GET /v1/series/{name}/forecast?horizon=15  after posting the same 14 days (the
#                                    stream's fitted model is reused: a predict per request)
#
# Peers (the project's rule: a benchmark runs the peer in the same run, on the same input): the
# Python model servers a team would otherwise write (bench/peers/, Flask under gunicorn with sync
# workers, as many worker processes as --server-threads) answer the two headline endpoints,
#   GET /v1/users/{id}/recommendations?k=10  numpy EASE trained at startup from the same
#                                            ratings.csv with our defaults (same top 10s)
#   POST /v1/score                           XGBoost on the model file `prescale train fraud`
#                                            wrote (same probabilities; no top_features)
# and are measured exactly as ours: the same wrk run, `prescale load` at 50 % of their own peak,
# and also at our service's rate when that is below their peak; ours is also measured at the
# peer's rate. Printed per endpoint: both sides' figures and rps_ratio_vs_flask (ours ÷ peer peak
# req/s: above 1 is better) and p99_ratio_vs_flask (ours ÷ peer p99 at each one's own 50 %: below
# 1 is better), and p99 ratios at the same rate (ours at the peer's; the peer at ours).
#
# Every server starts in its own session (setsid); ports are picked at run time; everything
# started is stopped on exit. Prints a table per service, the peer comparison, the goals check
# and a RESULT line.
#
# Usage: bench/services.sh [--rounds N] [--duration SECONDS] [--connections N]
#                          [--wrk-threads N] [--server-threads N] [--load-fraction F]
#                          [--pin | --no-pin] [--data DIR] [--prescale PATH]
#   --connections     wrk's connections, and the most requests in flight for `prescale load` (16)
#   --server-threads  I/O threads of each service (1: a replica of one core; the client gets the
#                     other core of a 2-core machine), and the peers' gunicorn workers. The
#                     forecast service's fit pool has one thread per core it may run on.
#   --pin             (default) with 2 cores or more, every server (ours and the peers) runs on
#                     core 0 and every client (wrk, `prescale load`) on core 1 (taskset), so the
#                     scheduler does not move them across cores or put both on one: less noise
#                     between rounds. The forecast fit pool then has core 0 only.
#   --no-pin          let the scheduler place them (as before --pin existed)
# Env:   PRESCALE=path/to/prescale (default build/apps/prescale/prescale; --prescale wins)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

rounds=3 duration=10 connections=16 wrk_threads=2 server_threads=1 load_fraction=0.5 pin=1
data=../shared/data prescale=${PRESCALE:-build/apps/prescale/prescale}
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --wrk-threads) wrk_threads=$2; shift 2 ;;
    --server-threads) server_threads=$2; shift 2 ;;
    --load-fraction) load_fraction=$2; shift 2 ;;
    --pin) pin=1; shift ;;
    --no-pin) pin=0; shift ;;
    --data) data=$2; shift 2 ;;
    --prescale) prescale=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
require_tools "scripts/install-deps --bench" wrk curl python3 gunicorn taskset
require_prescale "$prescale"
# Where scripts/install-deps unpacks python3-xgboost for the fraud peer.
peer_pythonpath=/usr/local/lib/prescale/bench-python
PYTHONPATH=$peer_pythonpath /usr/bin/python3 -c 'import flask, numpy, xgboost' 2>/dev/null ||
  { echo "missing the peers' Python packages: run scripts/install-deps --bench" >&2; exit 1; }
# Commands prefixed to every server and every client (--pin).
server_cpu=() client_cpu=()
if [ "$pin" = 1 ] && [ "$(nproc)" -ge 2 ]; then
  server_cpu=(taskset -c 0) client_cpu=(taskset -c 1)
else
  pin=0
fi
movielens=$data/recsys/movielens-latest-small
creditcard=$data/fraud/ulb-creditcard-sample-train.csv
nasa=$data/traces/nasa-http-1995-07.csv
for f in "$movielens/ratings.csv" "$creditcard" "$nasa"; do
  [ -s "$f" ] || { echo "missing $f (the shared data)" >&2; exit 1; }
done

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# --- models and request bodies ------------------------------------------------------------------
echo "training models into $work/models ..." >&2
"$prescale" train recommend --data "$movielens" --model-dir "$work/models/recommend" \
  --no-validate >/dev/null
"$prescale" train fraud --data "$creditcard" --model-dir "$work/models/fraud" >/dev/null

python3 - "$movielens/ratings.csv" "$creditcard" "$nasa" "$work" <<'PY'
import collections, csv, datetime, json, sys
ratings, creditcard, nasa, work = sys.argv[1:]

counts = collections.Counter()
with open(ratings) as f:
    for row in csv.DictReader(f):
        counts[int(row["movieId"])] += 1
with open(f"{work}/items.txt", "w") as f:
    f.write("\n".join(str(item) for item, _ in counts.most_common(50)) + "\n")

features = ["Time"] + [f"V{i}" for i in range(1, 29)] + ["Amount"]
with open(creditcard) as f:
    rows = [{k: float(row[k]) for k in features} for _, row in zip(range(100), csv.DictReader(f))]
with open(f"{work}/score.json", "w") as f:
    json.dump(rows[0], f)
with open(f"{work}/batch.json", "w") as f:
    json.dump({"transactions": rows}, f)

# The trace's local time is EDT (UTC-4); the service only needs an increasing 60 s grid.
edt = datetime.timezone(datetime.timedelta(hours=-4))
timestamps, values = [], []
with open(nasa) as f:
    for row in csv.DictReader(f):
        t = datetime.datetime.strptime(row["timestamp_local_edt"], "%Y-%m-%d %H:%M")
        timestamps.append(int(t.replace(tzinfo=edt).timestamp()))
        values.append(float(row["requests"]))
        if len(timestamps) == 14 * 1440:
            break
with open(f"{work}/forecast.json", "w") as f:
    json.dump({"timestamps": timestamps, "values": values, "horizon": 15}, f)
with open(f"{work}/points.json", "w") as f:
    json.dump({"timestamps": timestamps, "values": values}, f)
print(len(timestamps), file=open(f"{work}/forecast_points.txt", "w"))
PY
echo '{"user": {user}, "item": 2571}' > "$work/interaction.json"

# wrk scripts: the same requests `prescale load` sends (users drawn from 1..610, items from the
# list, bodies from the files).
cat > "$work/users.lua" <<'LUA'
request = function()
  return wrk.format("GET", "/v1/users/" .. math.random(1, 610) .. "/recommendations?k=10")
end
LUA
{
  echo "local items = {$(paste -sd, "$work/items.txt")}"
  cat <<'LUA'
request = function()
  return wrk.format("GET", "/v1/items/" .. items[math.random(#items)] .. "/similar?k=10")
end
LUA
} > "$work/similar.lua"
cat > "$work/interactions.lua" <<'LUA'
request = function()
  return wrk.format("POST", "/v1/interactions", {["Content-Type"] = "application/json"},
                    '{"user": ' .. math.random(1, 610) .. ', "item": 2571}')
end
LUA
post_lua "$work/score.json" > "$work/score.lua"
post_lua "$work/batch.json" > "$work/batch.lua"
post_lua "$work/forecast.json" > "$work/forecast.lua"
similar_mix=$(sed 's|.*|GET /v1/items/&/similar?k=10:1|' "$work/items.txt" | paste -sd,)

# --- the services -------------------------------------------------------------------------------
start() {  # KIND [FLAGS...]: starts `prescale serve KIND`, prints its port
  local kind=$1; shift
  setsid "${server_cpu[@]}" "$prescale" serve "$kind" --port 0 --port-file "$work/$kind.port" \
    --threads "$server_threads" --log-level warn "$@" </dev/null >/dev/null &
  pids+=($!)
}
start recommend --model-dir "$work/models/recommend" --model-poll-ms 0
start fraud --model-dir "$work/models/fraud" --model-poll-ms 0
start forecast
# PORT MODULE [NAME=VALUE...]: gunicorn serving bench/peers/MODULE.py's app on PORT, sync workers,
# one per server thread, the app loaded (the model trained) before the workers fork.
start_peer() {
  local port=$1 module=$2; shift 2
  env PYTHONPATH="$peer_pythonpath" "$@" setsid "${server_cpu[@]}" gunicorn --preload \
    --chdir "$PWD/bench/peers" --workers "$server_threads" --worker-class sync \
    --bind "127.0.0.1:$port" --log-level warning "$module:app" </dev/null >"$work/$module.log" 2>&1 &
  pids+=($!)
}
peer_rec_port=$(free_port)
start_peer "$peer_rec_port" recommend_server RATINGS_CSV="$(realpath "$movielens/ratings.csv")"
peer_fraud_port=$(free_port)
fraud_model_file=("$work"/models/fraud/fraud-v*.json)  # the one version just trained
start_peer "$peer_fraud_port" fraud_server FRAUD_MODEL_FILE="${fraud_model_file[0]}"
rec_port=$(wait_port_file "$work/recommend.port")
fraud_port=$(wait_port_file "$work/fraud.port")
fc_port=$(wait_port_file "$work/forecast.port")
for p in "$rec_port" "$fraud_port" "$fc_port"; do wait_for "http://127.0.0.1:$p/readyz"; done
# The recommend peer trains EASE (a 4,000 × 4,000 inverse) before it listens: about a minute.
echo "waiting for the peers (the recommend peer trains at startup) ..." >&2
wait_for "http://127.0.0.1:$peer_fraud_port/healthz" 60
wait_for "http://127.0.0.1:$peer_rec_port/healthz" 300

check() {  # what it asserts, then a command whose output must contain the expected text
  local what=$1 expect=$2; shift 2
  "$@" 2>/dev/null | grep -q -- "$expect" || { echo "$what: unexpected answer" >&2; exit 1; }
}
check recommend '"items"' curl -fsS "http://127.0.0.1:$rec_port/v1/users/1/recommendations?k=10"
check similar '"items"' curl -fsS "http://127.0.0.1:$rec_port/v1/items/$(head -1 "$work/items.txt")/similar?k=10"
check score '"fallback":false' curl -fsS "http://127.0.0.1:$fraud_port/v1/score" \
  -H 'Content-Type: application/json' --data-binary "@$work/score.json"
check forecast '"p99"' curl -fsS "http://127.0.0.1:$fc_port/v1/forecast" \
  -H 'Content-Type: application/json' --data-binary "@$work/forecast.json"
check points '"appended"' curl -fsS "http://127.0.0.1:$fc_port/v1/series/nasa/points" \
  -H 'Content-Type: application/json' --data-binary "@$work/points.json"
check stream '"p99"' curl -fsS "http://127.0.0.1:$fc_port/v1/series/nasa/forecast?horizon=15"
check 'peer recommend' '"items"' \
  curl -fsS "http://127.0.0.1:$peer_rec_port/v1/users/1/recommendations?k=10"
check 'peer score' '"decision"' curl -fsS "http://127.0.0.1:$peer_fraud_port/v1/score" \
  -H 'Content-Type: application/json' --data-binary "@$work/score.json"

# --- measurements -------------------------------------------------------------------------------
# Prints "p50_ms p99_ms late_percent" of a `prescale load` JSON report (late: sent over 1 ms after
# its scheduled time, because all connections were busy or the client fell behind); warns when a
# request was not answered with a status below 400.
load_stats() {
  python3 - "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
q = r["requests"]
if q["ok"] != q["scheduled"]:
    print(f"warning: {sys.argv[2]}: {q['ok']} of {q['scheduled']} answered ok "
          f"(status {r['status']}, errors {q['errors']}, unfinished {q['unfinished']})",
          file=sys.stderr)
print(f"{r['latency_ms']['p50']:.3f} {r['latency_ms']['p99']:.3f} "
      f"{100 * q['late'] / max(q['sent'], 1):.1f}")
PY
}

# NAME PORT MIX RATE: `prescale load` at RATE req/s (the MIX), --rounds times; prints the medians
# "p50_ms p99_ms".
latency_at() {
  local name=$1 port=$2 mix=$3 rate=$4 r p50 p99 late
  : > "$work/$name.lat"
  for r in $(seq 1 "$rounds"); do
    "${client_cpu[@]}" "$prescale" load --rate "$rate" --duration "${duration}s" \
      --target "http://127.0.0.1:$port" --mix "$mix" --connections "$connections" --threads 1 \
      --seed "$r" --timeout 10s --json "$work/load.json" >/dev/null
    read -r p50 p99 late <<<"$(load_stats "$work/load.json" "$name")"
    echo "$p50 $p99" >> "$work/$name.lat"
    printf '  %-28s round %s  at %s req/s  p50 %s ms  p99 %s ms  late %s %%\n' "$name" "$r" \
      "$rate" "$p50" "$p99" "$late" >&2
  done
  echo "$(cut -d' ' -f1 "$work/$name.lat" | median) $(cut -d' ' -f2 "$work/$name.lat" | median)"
}

# NAME PORT PATH WRK_SCRIPT MIX: peak req/s (wrk on PATH, or the script's requests), then the
# latency at load_fraction × peak (the MIX). Appends "NAME peak_rps rate p50_ms p99_ms" to
# $work/results.txt.
measure() {
  local name=$1 port=$2 path=$3 script=$4 mix=$5 r rps peak rate stats
  local url="http://127.0.0.1:$port"
  local wrk_args=("$url$path")
  [ -z "$script" ] || wrk_args=(-s "$script" "$url$path")
  "${client_cpu[@]}" wrk -t1 -c4 -d1s "${wrk_args[@]}" >/dev/null  # warm-up
  : > "$work/$name.peak"
  for r in $(seq 1 "$rounds"); do
    stats=$("${client_cpu[@]}" wrk -t"$wrk_threads" -c"$connections" -d"${duration}s" \
      --latency "${wrk_args[@]}" | wrk_stats "$name")
    read -r rps _ _ <<<"$stats"
    echo "$rps" >> "$work/$name.peak"
    printf '  %-28s round %s  wrk peak %10s req/s\n' "$name" "$r" "$rps" >&2
  done
  peak=$(median < "$work/$name.peak")
  rate=$(awk -v p="$peak" -v f="$load_fraction" 'BEGIN { printf "%.0f", p * f }')
  echo "$name $peak $rate $(latency_at "$name" "$port" "$mix" "$rate")" >> "$work/results.txt"
}

# NAME PORT MIX OTHER SELF: the latency (NAME) of the server SELF was measured on, at the rate
# at which OTHER (a measured name) was, when that is below SELF's peak; else nothing is measured.
# Appends "NAME - rate p50_ms p99_ms".
measure_at_rate_of() {
  local name=$1 port=$2 mix=$3 other=$4 self=$5 rate peak
  rate=$(awk -v n="$other" '$1 == n { print $3 }' "$work/results.txt")
  peak=$(awk -v n="$self" '$1 == n { print $2 }' "$work/results.txt")
  if awk -v r="$rate" -v p="$peak" 'BEGIN { exit !(r < p) }'; then
    echo "$name - $rate $(latency_at "$name" "$port" "$mix" "$rate")" >> "$work/results.txt"
  else
    echo "  $name: $other's rate $rate req/s is above the peak $peak req/s: not measured" >&2
    echo "$name - $rate - -" >> "$work/results.txt"
  fi
}

: > "$work/results.txt"
echo "measuring: wrk -t$wrk_threads -c$connections -d${duration}s, then prescale load at" \
  "$load_fraction × the median peak, $rounds rounds each ..." >&2
users_mix='GET /v1/users/{user}/recommendations?k=10:1'
measure recommendations "$rec_port" / "$work/users.lua" "$users_mix"
# Each peer right after ours on the same endpoint: the two are measured minutes apart at most.
measure recommendations_flask "$peer_rec_port" / "$work/users.lua" "$users_mix"
measure_at_rate_of recommendations_flask_our_rate "$peer_rec_port" "$users_mix" \
  recommendations recommendations_flask
measure_at_rate_of recommendations_flask_rate "$rec_port" "$users_mix" \
  recommendations_flask recommendations
measure similar "$rec_port" / "$work/similar.lua" "$similar_mix"
# Last of the recommend endpoints: it adds interactions that the other two would then read.
measure interactions "$rec_port" / "$work/interactions.lua" \
  "POST /v1/interactions@$work/interaction.json:1"
score_mix="POST /v1/score@$work/score.json:1"
measure score "$fraud_port" /v1/score "$work/score.lua" "$score_mix"
measure score_flask "$peer_fraud_port" /v1/score "$work/score.lua" "$score_mix"
measure_at_rate_of score_flask_our_rate "$peer_fraud_port" "$score_mix" score score_flask
measure_at_rate_of score_flask_rate "$fraud_port" "$score_mix" score_flask score
measure score_batch_100 "$fraud_port" /v1/score:batch "$work/batch.lua" \
  "POST /v1/score:batch@$work/batch.json:1"
measure forecast_14d "$fc_port" /v1/forecast "$work/forecast.lua" \
  "POST /v1/forecast@$work/forecast.json:1"
measure series_forecast "$fc_port" '/v1/series/nasa/forecast?horizon=15' '' \
  'GET /v1/series/nasa/forecast?horizon=15:1'

# --- report -------------------------------------------------------------------------------------
echo
pinning="not pinned"
[ "$pin" = 0 ] || pinning="pinned: servers on core 0, clients on core 1"
echo "$(nproc) cores, $pinning; each service --threads $server_threads; peak: wrk" \
  "-t$wrk_threads -c$connections -d${duration}s (closed loop); latency: prescale load --rate" \
  "$load_fraction×peak --connections $connections --threads 1 (open loop, from the scheduled" \
  "time); medians of $rounds rounds; forecast history $(cat "$work/forecast_points.txt") points"
printf '%-10s %-44s %10s %9s %8s %8s\n' service endpoint peak_rps rate_rps p50_ms p99_ms
declare -A peak rate p50 p99
while read -r name pk rt a b; do peak[$name]=$pk rate[$name]=$rt p50[$name]=$a p99[$name]=$b; done \
  < "$work/results.txt"
row() {
  printf '%-10s %-44s %10s %9s %8s %8s\n' "$1" "$2" "${peak[$3]}" "${rate[$3]}" "${p50[$3]}" \
    "${p99[$3]}"
}
row recommend 'GET /v1/users/{id}/recommendations?k=10' recommendations
row recommend 'GET /v1/items/{id}/similar?k=10' similar
row recommend 'POST /v1/interactions' interactions
row fraud 'POST /v1/score' score
row fraud 'POST /v1/score:batch (100 transactions)' score_batch_100
row forecast 'POST /v1/forecast (20,160 points)' forecast_14d
row forecast 'GET /v1/series/{name}/forecast' series_forecast

echo
echo "peers: Flask under gunicorn $(gunicorn --version | grep -o '[0-9][0-9.]*'), sync," \
  "--workers $server_threads (bench/peers/); the same wrk and prescale load settings; flask at" \
  "our rate: at the rate ours was measured at, when below the peer's peak"
printf '%-44s %-24s %10s %9s %8s %8s\n' endpoint server peak_rps rate_rps p50_ms p99_ms
vs_row() {  # ENDPOINT SERVER NAME
  printf '%-44s %-24s %10s %9s %8s %8s\n' "$1" "$2" "${peak[$3]}" "${rate[$3]}" "${p50[$3]}" \
    "${p99[$3]}"
}
vs_ratios() {  # OURS PEER
  echo "  rps_ratio_vs_flask $(ratio "${peak[$1]}" "${peak[$2]}")" \
    " p99_ratio_vs_flask $(ratio "${p99[$1]}" "${p99[$2]}") (each at its own" \
    "${load_fraction}×peak)  at the peer's rate: $(ratio "${p99[$2_rate]}" "${p99[$2]}")" \
    " at our rate: $(ratio "${p99[$1]}" "${p99[$2_our_rate]}")"
}
vs_row 'GET /v1/users/{id}/recommendations?k=10' prescale recommendations
vs_row '' flask recommendations_flask
vs_row '' 'flask at our rate' recommendations_flask_our_rate
vs_row '' "prescale at flask's rate" recommendations_flask_rate
vs_ratios recommendations recommendations_flask
vs_row 'POST /v1/score' prescale score
vs_row '' 'flask (no top_features)' score_flask
vs_row '' 'flask at our rate' score_flask_our_rate
vs_row '' "prescale at flask's rate" score_flask_rate
vs_ratios score score_flask

goal() {  # LABEL FIGURE_MS LIMIT_MS
  local verdict
  verdict=$(awk -v a="$2" -v b="$3" 'BEGIN { print (a <= b) ? "met" : "NOT met" }')
  echo "goal: $1 p99 ≤ $3 ms at ${load_fraction}×peak: $2 ms, $verdict"
}
echo
goal recommendations "${p99[recommendations]}" 2
goal score "${p99[score]}" 1
echo "RESULT recommend_p99_ms=${p99[recommendations]} score_p99_ms=${p99[score]}" \
  "recommend_peak_rps=${peak[recommendations]} score_peak_rps=${peak[score]}" \
  "similar_p99_ms=${p99[similar]} interactions_p99_ms=${p99[interactions]}" \
  "score_batch_p99_ms=${p99[score_batch_100]} forecast_p99_ms=${p99[forecast_14d]}" \
  "series_forecast_p99_ms=${p99[series_forecast]} forecast_peak_rps=${peak[forecast_14d]}" \
  "recommend_flask_peak_rps=${peak[recommendations_flask]}" \
  "recommend_flask_p99_ms=${p99[recommendations_flask]}" \
  "recommend_rps_ratio_vs_flask=$(ratio "${peak[recommendations]}" "${peak[recommendations_flask]}")" \
  "recommend_p99_ratio_vs_flask=$(ratio "${p99[recommendations]}" "${p99[recommendations_flask]}")" \
  "recommend_p99_ratio_vs_flask_at_our_rate=$(ratio "${p99[recommendations]}" \
    "${p99[recommendations_flask_our_rate]}")" \
  "recommend_p99_ms_at_flask_rate=${p99[recommendations_flask_rate]}" \
  "recommend_p99_ratio_vs_flask_at_flask_rate=$(ratio "${p99[recommendations_flask_rate]}" \
    "${p99[recommendations_flask]}")" \
  "score_flask_peak_rps=${peak[score_flask]} score_flask_p99_ms=${p99[score_flask]}" \
  "score_rps_ratio_vs_flask=$(ratio "${peak[score]}" "${peak[score_flask]}")" \
  "score_p99_ratio_vs_flask=$(ratio "${p99[score]}" "${p99[score_flask]}")" \
  "score_p99_ratio_vs_flask_at_our_rate=$(ratio "${p99[score]}" "${p99[score_flask_our_rate]}")" \
  "score_p99_ms_at_flask_rate=${p99[score_flask_rate]}" \
  "score_p99_ratio_vs_flask_at_flask_rate=$(ratio "${p99[score_flask_rate]}" "${p99[score_flask]}")" \
  "server_threads=$server_threads pinned=$pin"
