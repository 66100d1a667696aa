#!/usr/bin/env bash
# A controller restarted without its state (a new pod whose state directory was an emptyDir):
# what the two hours after it cost, with the history a Prometheus kept (`prescale controller
# --history-from`: two days, or the policy's whole 14) against none, the HPA (which keeps no
# history) beside them. One restart every 3 hours over two days of each long shared trace (the
# restart's hour matters: before a ramp the forecast is what the reactive floor lacks), each
# replayed for 2 hours from the restart, in the simulator (`prescale sim --offset T --history H`:
# the history the policy starts with is the trace's, as the gateways counted it).
#
# Usage: bench/restart.sh [--topology single|online-boutique|train-ticket] [--peak-rps R]
#   defaults: online-boutique, 3000
# Env: PRESCALE=path/to/prescale (default build/apps/prescale/prescale), PRESCALE_DATA_DIR
# Ends with a RESULT line: per trace, the requests served outside the SLO (late or dropped) over
# all restarts with 14 days of history as a share of those with none, and the replica-hours' ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

topology=online-boutique peak=3000
while [ $# -gt 0 ]; do
  case "$1" in
    --topology) topology=$2; shift 2 ;;
    --peak-rps) peak=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
sim_bench_setup

# The traces long enough for two weeks of history before two days of restarts.
long=()
for t in "${traces[@]}"; do
  case "$(basename "$t")" in nasa-http-1995-07.csv | Twitter_volume_AMZN.csv) long+=("$t") ;; esac
done
[ ${#long[@]} -gt 0 ] || { echo "no trace long enough in $data" >&2; exit 1; }

# Restarts from day 15 (two weeks of history before the first), every 3 hours for two days.
for t in "${long[@]}"; do
  name=$(basename "$t" .csv)
  for h in $(seq 0 3 45); do
    offset=$((15 * 24 + h))
    for history in 0h 48h 336h; do
      out="$work/$name-$h-$history.json"
      if [ "$history" = 0h ]; then
        "$prescale" sim --trace "$t" --topology "$topology" --peak-rps "$peak" \
          --policies prescale,hpa --offset "${offset}h" --duration 2h --json "$out" >/dev/null
      else
        "$prescale" sim --trace "$t" --topology "$topology" --peak-rps "$peak" \
          --policies prescale --offset "${offset}h" --duration 2h --history "$history" \
          --json "$out" >/dev/null
      fi
    done
  done
done

python3 - "$work" "$topology" "${long[@]}" <<'EOF'
import glob, json, os, sys
work, topology, traces = sys.argv[1], sys.argv[2], sys.argv[3:]
results = []
print(f"topology {topology}; per trace, 16 restarts (every 3 h over two days from day 15), "
      "each followed for 2 h\n")
print(f"{'trace':<22} {'policy':<10} {'history':>8} {'outside SLO':>12} {'within SLO':>11} "
      f"{'replica-h':>10} {'x oracle':>9}")
for t in traces:
    name = os.path.basename(t)[:-4]
    rows = {}
    for history in ("0h", "48h", "336h"):
        for path in sorted(glob.glob(f"{work}/{name}-*-{history}.json")):
            for run in json.load(open(path)):
                key = (run["policy"], history)
                r = rows.setdefault(key, {"requests": 0, "within": 0, "rh": 0, "oracle": 0})
                r["requests"] += run["requests"]
                r["within"] += run["served_within_slo"]
                r["rh"] += run["replica_hours"]
                r["oracle"] += run["oracle_replica_hours"]
    for (policy, history), r in sorted(rows.items(), key=lambda kv: (kv[0][0] != "prescale", kv[0][1])):
        outside = r["requests"] - r["within"]
        print(f"{name:<22} {policy:<10} {history if policy == 'prescale' else '-':>8} "
              f"{outside:>12,.0f} {100 * r['within'] / r['requests']:>10.3f}% "
              f"{r['rh']:>10.1f} {r['rh'] / r['oracle']:>9.3f}")
    none, full = rows[("prescale", "0h")], rows[("prescale", "336h")]
    two = rows[("prescale", "48h")]
    out = lambda r: r["requests"] - r["within"]
    key = name.replace("-", "_").lower()
    results.append(f"{key}_outside_slo_ratio_14d={out(full) / max(out(none), 1):.3f}")
    results.append(f"{key}_outside_slo_ratio_2d={out(two) / max(out(none), 1):.3f}")
    results.append(f"{key}_cost_ratio_14d={full['rh'] / none['rh']:.3f}")
    print()
print("RESULT " + " ".join(results))
EOF
