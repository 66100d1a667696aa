#!/usr/bin/env bash
# Prescale's cost-versus-SLO frontier against the baselines: on one trace, per topology, the
# baselines (HPA at 80 % and 60 %, Knative, AWS) and the oracle once, then the prescale policy at
# every planning level × scale-down delay × reactive-floor margin of a grid, all through
# `prescale sim` on the same world.
# Prints, per topology, the prescale configurations on the frontier (no other serves more within
# the SLO for less) and, for each baseline, the cheapest configuration that dominates it (at
# least as much within the SLO at no more cost) — issue 4's dominance bar asks one configuration
# to do so for every baseline; the last column says whether the default (P90, 3 min) does.
# Ends with a RESULT line: per topology the baselines dominated by some configuration and by the
# default.
#
# Usage: bench/frontier.sh [--trace FILE] [--topologies LIST] [--levels LIST] [--delays LIST]
#                          [--headrooms LIST] [--peak-rps X] [--queue-limit DUR]
#   --trace FILE       default ../shared/data/traces/nasa-http-1995-07.csv
#   --topologies LIST  default single,online-boutique,train-ticket
#   --levels LIST      planning quantiles (default 0.5,0.8,0.9,0.95,0.97,0.99,0.995,0.999,0.9999)
#   --delays LIST      scale-down delays while a forecast plans a service (default 2m,3m,5m,10m;
#                      3m is the policy's default; without a forecast it holds 5m)
#   --headrooms LIST   the reactive floor's margins over the observed load (default 0.05, the
#                      policy's default; e.g. 0,0.05,0.2,0.45)
#   --queue-limit DUR  passed to prescale sim (default its own: half the SLO; none: FIFO)
# Env:   PRESCALE=path/to/prescale (default build/apps/prescale/prescale)
#        PRESCALE_DATA_DIR=path/to/shared/data (default ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."

data=${PRESCALE_DATA_DIR:-../shared/data}
trace=$data/traces/nasa-http-1995-07.csv
topologies=single,online-boutique,train-ticket
levels=0.5,0.8,0.9,0.95,0.97,0.99,0.995,0.999,0.9999
delays=2m,3m,5m,10m
headrooms=0.05
peak=3000 queue_limit=""
while [ $# -gt 0 ]; do
  case "$1" in
    --trace) trace=$2; shift 2 ;;
    --topologies) topologies=$2; shift 2 ;;
    --levels) levels=$2; shift 2 ;;
    --delays) delays=$2; shift 2 ;;
    --headrooms) headrooms=$2; shift 2 ;;
    --peak-rps) peak=$2; shift 2 ;;
    --queue-limit) queue_limit=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
prescale=${PRESCALE:-build/apps/prescale/prescale}
[ -x "$prescale" ] || { echo "missing $prescale: run make build" >&2; exit 1; }
[ -f "$trace" ] || { echo "missing $trace: the shared data directory (PRESCALE_DATA_DIR)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "missing python3: run scripts/install-deps" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

sim() {  # JSON_OUT [FLAGS...]
  local out=$1; shift
  "$prescale" sim --trace "$trace" --data-dir "$data" --peak-rps "$peak" --progress never \
    ${queue_limit:+--queue-limit "$queue_limit"} --json "$out" "$@" > /dev/null
}

IFS=, read -ra topo_list <<< "$topologies"
IFS=, read -ra level_list <<< "$levels"
IFS=, read -ra delay_list <<< "$delays"
IFS=, read -ra headroom_list <<< "$headrooms"
for topo in "${topo_list[@]}"; do
  echo "$topo: baselines" >&2
  sim "$work/$topo.base.json" --topology "$topo" --policies hpa,kpa,aws,oracle
  sim "$work/$topo.hpa60.json" --topology "$topo" --policies hpa --hpa-target 60
  for q in "${level_list[@]}"; do
    for d in "${delay_list[@]}"; do
      for h in "${headroom_list[@]}"; do
        echo "$topo: prescale P$q, scale-down delay $d, floor margin $h" >&2
        sim "$work/$topo.p$q.d$d.h$h.json" --topology "$topo" --policies prescale \
          --prescale-quantile "$q" --prescale-forecast-scale-down-delay "$d" \
          --prescale-floor-headroom "$h"
      done
    done
  done
done

python3 - "$work" "$trace" "$topologies" "$levels" "$delays" "$headrooms" <<'PY'
import json, os, sys
work, trace, topologies, levels, delays, headrooms = sys.argv[1:7]
def level_name(q):
    return "P" + format(float(q) * 100, "g")
result = []
for topo in topologies.split(","):
    base = {r["policy"]: r for r in json.load(open(f"{work}/{topo}.base.json"))}
    base["hpa (60 %)"] = json.load(open(f"{work}/{topo}.hpa60.json"))[0]
    oracle_hours = base.pop("oracle")["replica_hours"]
    def point(r):
        return r["slo_attainment"], r["replica_hours"] / oracle_hours
    configs = []
    for q in levels.split(","):
        for d in delays.split(","):
            for h in headrooms.split(","):
                r = json.load(open(f"{work}/{topo}.p{q}.d{d}.h{h}.json"))[0]
                name = (level_name(q) + ("" if d == "3m" else f", delay {d}")
                        + ("" if float(h) == 0.05 else f", floor +{format(float(h) * 100, 'g')} %"))
                configs.append((name, *point(r), float(q) == 0.9 and d == "3m" and float(h) == 0.05))
    print(f"\n### {os.path.basename(trace)} on {topo}\n")
    frontier = [c for c in configs
                if not any(o[1] >= c[1] and o[2] <= c[2] and (o[1] > c[1] or o[2] < c[2])
                           for o in configs)]
    print("Frontier: " + "; ".join(f"{n} {100 * a:.3f} % @{x:.3f}"
                                   for n, a, x, _ in sorted(frontier, key=lambda c: c[2])))
    print()
    print("| baseline | within SLO | × oracle | cheapest prescale dominating it | within SLO | × oracle | default (P90) dominates |")
    print("|---|---|---|---|---|---|---|")
    some = by_default = 0
    for name in ("hpa", "hpa (60 %)", "kpa", "aws"):
        a, x = point(base[name])
        doms = [c for c in configs if c[1] >= a and c[2] <= x]
        best = min(doms, key=lambda c: c[2]) if doms else None
        default = next((c for c in configs if c[3]), None)
        d_ok = default is not None and default[1] >= a and default[2] <= x
        some += best is not None
        by_default += d_ok
        print(f"| {name} | {100 * a:.3f} % | {x:.3f} | "
              + (f"{best[0]} | {100 * best[1]:.3f} % | {best[2]:.3f}" if best else "none | | ")
              + f" | {('yes' if d_ok else 'no') if default else 'not in the grid'} |")
    key = topo.replace("-", "_")
    result += [f"{key}_dominated={some}/4", f"{key}_dominated_by_default={by_default}/4"]
print()
print("RESULT " + " ".join(result))
PY
