#!/usr/bin/env bash
# Slowdown warnings against the latency alert a team would write by hand: on the same simulated
# runs (prescale, the HPA and Knative; every shared trace through one topology), how soon each
# tells of a release that makes the busiest service slower, and how often it fires when nothing
# changed.
#   - ours: Prescale's slowdown warnings (docs/healing.md, "Slowdown warnings"): each request's
#     time in service, the median of 5 minutes, 4.27 usual deviations, 1.2x and 1 ms over its
#     usual — as `prescale sim` counts them (`slowdowns_at`);
#   - the peer: the P99 of the minute above 1.2x its mean over the day before, for 5 minutes
#     (a Prometheus rule `histogram_quantile(0.99, …) > 1.2 * avg_over_time(…[1d])`, `for: 5m`),
#     replayed on the runs' timelines. Neither fires in a run's first 30 minutes.
# Each trace runs twice: as it is, and with a release at 60 % of its length (at least 45 minutes
# in) that makes the busiest service FACTOR times slower (`prescale sim --release`). A release
# is detected when a rule opens on that service within the hour after it.
#
# Usage: bench/slowdown.sh [--topology T] [--factor F] [--peak-rps X]
#   --topology T  online-boutique (default), single or train-ticket
#   --factor F    the release's service time × F (default 1.5)
# Env:   PRESCALE=path/to/prescale (default build/apps/prescale/prescale)
#        PRESCALE_DATA_DIR=path/to/shared/data (default ../shared/data)
# Ends with a RESULT line: releases detected by each rule, the median delay, the alerts per
# service-day on the unchanged runs, and the ratio of those (ours / the peer's).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

peak=3000 topology=online-boutique factor=1.5
while [ $# -gt 0 ]; do
  case "$1" in
    --peak-rps) peak=$2; shift 2 ;;
    --topology) topology=$2; shift 2 ;;
    --factor) factor=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
case "$topology" in
  single) service=app ;;
  online-boutique) service=productcatalogservice ;;
  train-ticket) service=ts-seat-service ;;
  *) echo "unknown topology $topology" >&2; exit 2 ;;
esac
sim_bench_setup
policies=prescale,hpa,kpa
n=0
for trace in "${traces[@]}"; do
  n=$((n + 1))
  name=$(basename "$trace" .csv)
  echo "[$n/${#traces[@]}] $name on $topology" >&2
  "$prescale" sim --trace "$trace" --topology "$topology" --data-dir "$data" --peak-rps "$peak" \
    --policies "$policies" --progress never \
    --timeline "$work/$n-clean.csv" --json "$work/$n-clean.json" > /dev/null
  at=$(python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))[0]["duration_seconds"]
print(int(max(0.6 * d, 2700)))' "$work/$n-clean.json")
  echo "$name $at" >> "$work/releases"
  "$prescale" sim --trace "$trace" --topology "$topology" --data-dir "$data" --peak-rps "$peak" \
    --policies "$policies" --progress never --release "$service:${at}s:$factor" \
    --timeline "$work/$n-release.csv" --json "$work/$n-release.json" > /dev/null
done

python3 - "$work" "$n" "$service" "$factor" <<'PY'
import csv, json, statistics, sys
from collections import defaultdict, deque

work, n, released, factor = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
RATIO, FOR_MINUTES, WARMUP, DAY = 1.2, 5, 1800.0, 86400.0
releases = [line.split() for line in open(f"{work}/releases")]

def peer_alerts(path):
    """(policy, service) -> the times (seconds since the start) the P99 rule opened, and the
    service-minutes seen."""
    series = defaultdict(list)
    with open(path) as f:
        for r in csv.DictReader(f):
            p99 = float(r["latency_p99_ms"]) if r["latency_p99_ms"] else None
            series[(r["policy"], r["service"])].append(
                (float(r["start_seconds"]), float(r["seconds"]), p99))
    alerts, minutes = {}, 0
    for key, rows in series.items():
        window, total = deque(), 0.0  # (end, p99) of the day before, and their sum
        run, firing, opened = 0, False, []
        for start, seconds, p99 in rows:
            minutes += 1
            end = start + seconds
            while window and window[0][0] <= end - DAY:
                total -= window.popleft()[1]
            cond = (p99 is not None and window and end > WARMUP and
                    p99 > RATIO * total / len(window))
            run = run + 1 if cond else 0
            if run >= FOR_MINUTES and not firing:
                firing = True
                opened.append(end)
            elif run == 0:
                firing = False
            if p99 is not None:
                window.append((end, p99))
                total += p99
        alerts[key] = opened
    return alerts, minutes

def ours(path):
    alerts, minutes_seen = {}, 0
    for run in json.load(open(path)):
        for s in run["services"]:
            alerts[(run["policy"], s["service"])] = s["slowdowns_at"]
        minutes_seen += len(run["services"]) * run["duration_seconds"] / 60
    return alerts, minutes_seen

rows = []
summary = {"ours": {"detected": 0, "delays": [], "false": 0}, "peer": {"detected": 0, "delays": [], "false": 0}}
releases_total, service_days = 0, 0.0
for i in range(1, n + 1):
    name, at = releases[i - 1][0], float(releases[i - 1][1])
    clean = {"ours": ours(f"{work}/{i}-clean.json"), "peer": peer_alerts(f"{work}/{i}-clean.csv")}
    release = {"ours": ours(f"{work}/{i}-release.json"),
               "peer": peer_alerts(f"{work}/{i}-release.csv")}
    days = clean["ours"][1] / 1440
    service_days += days
    policies = sorted({p for p, _ in clean["ours"][0]})
    for policy in policies:
        releases_total += 1
        row = [name, policy]
        for rule in ("ours", "peer"):
            false = sum(len(v) for (p, _), v in clean[rule][0].items() if p == policy)
            summary[rule]["false"] += false
            after = [t - at for t in release[rule][0].get((policy, released), [])
                     if at <= t <= at + 3600]
            if after:
                summary[rule]["detected"] += 1
                summary[rule]["delays"].append(min(after))
            row += [f"{min(after) / 60:.0f} min" if after else "missed", str(false)]
        rows.append(row)

print(f"A release making {released} {factor}x slower, each trace through its topology; "
      f"alerts on the unchanged runs (all services) for scale.")
print("| trace | policy | ours: detected after | ours: alerts unchanged | "
      "peer: detected after | peer: alerts unchanged |")
print("|---|---|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
# Alerts per service-day over every policy's unchanged runs (service_days counts each policy's).
per_day = {k: v["false"] / service_days for k, v in summary.items()}
median = {k: statistics.median(v["delays"]) / 60 if v["delays"] else float("nan")
          for k, v in summary.items()}
ratio = per_day["ours"] / per_day["peer"] if per_day["peer"] > 0 else float("nan")
print(f"RESULT releases={releases_total} detected={summary['ours']['detected']} "
      f"detected_peer={summary['peer']['detected']} median_minutes={median['ours']:.1f} "
      f"median_minutes_peer={median['peer']:.1f} "
      f"alerts_per_service_day={per_day['ours']:.4f} "
      f"alerts_per_service_day_peer={per_day['peer']:.4f} alert_ratio_vs_peer={ratio:.4f}")
PY
