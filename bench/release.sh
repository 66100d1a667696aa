#!/usr/bin/env bash
# A release that makes one service slower, mid-trace: every policy on the same world, and what
# each serves within the SLO on that service before the release and after it (its first 10
# minutes, first hour, first day, and the rest), with the replica-hours over the whole run.
# `prescale` learns the new capacity from latency and throughput; `prescale-fixed-capacity`
# (the ablation) keeps the configured one; the HPA and Knative scale on CPU and concurrency,
# which see the slower service directly; the oracle plans with the truth (docs/simulator.md,
# "Releases").
#
# Usage: bench/release.sh [--trace FILE] [--at DUR] [--factor F]
#   --trace FILE  default ../shared/data/traces/nasa-http-1995-07.csv
#   --at DUR      when the release lands, into the run (default 336h: two weeks of history)
#   --factor F    the slowed service's service time × F (default 1.5: 20 → 30 ms)
# The slowed service: the busiest of each topology (single: app; online-boutique:
# productcatalogservice; train-ticket: ts-seat-service).
# Env: PRESCALE=path/to/prescale (default build/apps/prescale/prescale)
# Ends with a RESULT line: per topology, within the SLO after the first hour for prescale, the
# ablation and the oracle, and prescale's cost ratio to the oracle.
set -euo pipefail
cd "$(dirname "$0")/.."

trace=../shared/data/traces/nasa-http-1995-07.csv at=336h factor=1.5
while [ $# -gt 0 ]; do
  case "$1" in
    --trace) trace=$2; shift 2 ;;
    --at) at=$2; shift 2 ;;
    --factor) factor=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
prescale=${PRESCALE:-build/apps/prescale/prescale}
[ -x "$prescale" ] || { echo "missing $prescale: run make build" >&2; exit 1; }
[ -f "$trace" ] || { echo "no trace $trace (the shared data folder)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

policies=prescale,prescale-fixed-capacity,hpa,kpa,aws,oracle
for pair in single:app online-boutique:productcatalogservice train-ticket:ts-seat-service; do
  topo=${pair%%:*} service=${pair##*:}
  echo "$topo: $service × $factor at $at" >&2
  "$prescale" sim --trace "$trace" --topology "$topo" --peak-rps 3000 --progress never \
    --policies "$policies" --release "$service:$at:$factor" \
    --json "$work/$topo.json" --timeline "$work/$topo.csv" > /dev/null
done

python3 - "$work" "$at" "$factor" <<'PY'
import csv, json, re, sys
work, at, factor = sys.argv[1], sys.argv[2], float(sys.argv[3])

def seconds(text):
    total = 0.0
    for amount, unit in re.findall(r"([\d.]+)(ms|s|m|h)", text):
        total += float(amount) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total if total else float(text)

release_minute = int(seconds(at) // 60)
spans = [("day before", -1440, 0), ("first 10 min", 0, 10), ("first hour", 0, 60),
         ("first day", 0, 1440), ("after the first day", 1440, 10**9)]
result = []
for topo, service in [("single", "app"), ("online-boutique", "productcatalogservice"),
                      ("train-ticket", "ts-seat-service")]:
    sums = {}
    with open(f"{work}/{topo}.csv") as f:
        for row in csv.DictReader(f):
            if row["service"] != service or not row["arrived"]:
                continue
            m = int(float(row["start_seconds"]) // 60) - release_minute
            for name, lo, hi in spans:
                if lo <= m < hi:
                    s = sums.setdefault((row["policy"], name), [0.0, 0.0])
                    s[0] += float(row["arrived"])
                    s[1] += float(row["served_within_slo"])
    runs = {r["policy"]: r for r in json.load(open(f"{work}/{topo}.json"))}
    print(f"\n{topo}: {service}'s service time × {factor:g} at {at}; within the SLO on it")
    print(f"{'policy':24}" + "".join(f"{name:>21}" for name, _, _ in spans) +
          f"{'replica-h':>11}{'× oracle':>9}")
    for policy, run in runs.items():
        cells = ""
        for name, _, _ in spans:
            a, ok = sums.get((policy, name), [0, 0])
            cells += f"{100 * ok / a:20.3f}%" if a > 0 else f"{'-':>21}"
        print(f"{policy:24}{cells}{run['replica_hours']:11.1f}{run['cost_ratio_to_oracle']:9.3f}")
    key = topo.replace("-", "_")
    def after(policy):
        a = ok = 0.0
        for name in ("first day", "after the first day"):
            x = sums.get((policy, name), [0, 0])
            a += x[0]
            ok += x[1]
        # Past the first hour: the first day less its first hour.
        first = sums.get((policy, "first hour"), [0, 0])
        a -= first[0]
        ok -= first[1]
        return ok / a if a > 0 else float("nan")
    result += [f"{key}_prescale_after_first_hour={after('prescale'):.5f}",
               f"{key}_fixed_capacity_after_first_hour={after('prescale-fixed-capacity'):.5f}",
               f"{key}_oracle_after_first_hour={after('oracle'):.5f}",
               f"{key}_prescale_cost_ratio={runs['prescale']['cost_ratio_to_oracle']:.3f}"]
print("\nRESULT " + " ".join(result))
PY
