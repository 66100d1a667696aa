#!/usr/bin/env bash
# Forecast accuracy on every shared trace: `prescale eval forecast` scores each model on the
# trace's held-out tail (rolling origin) at every whole-step horizon from 1 to 15 minutes; this
# script averages each model's P90 pinball loss and P90 coverage over those horizons and prints,
# per trace, the selected model's ratio to the best of the naive baselines (naive, seasonal naive
# day and week) — issue 4's bar is ≤ 0.8 with coverage in 85–95 %. The baselines are scored
# twice: with their textbook intervals (the empirical quantiles of their backtest errors, the
# same width at every origin; the "ratio" column) and with Prescale's own calibration (errors in
# units of the recent error, online recalibration; "vs calibrated"), which isolates what the
# selected model's point forecasts add.
# Ends with a RESULT line: both ratios and the coverage per trace, and the worst ratios.
#
# Usage: bench/forecast.sh [--data DIR] [--models LIST]
#   --data DIR     the shared data folder (default ../shared/data)
#   --models LIST  comma-separated models to score besides the baselines and "selected"
# Env:   PRESCALE=path/to/prescale (default build/apps/prescale/prescale)
set -euo pipefail
cd "$(dirname "$0")/.."

data=../shared/data models=""
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
prescale=${PRESCALE:-build/apps/prescale/prescale}
[ -x "$prescale" ] || { echo "missing $prescale: run make build" >&2; exit 1; }
[ -d "$data/traces" ] || { echo "no shared data at $data: pass --data" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

baselines=naive,seasonal_naive_day,seasonal_naive_week
wanted=$baselines,selected${models:+,$models}

# Horizons: every whole step from 1 to 15 minutes. Traces of an hour (10-second steps) keep 45 %
# for scoring, so that the 15-minute horizon is scored at ~70 origins and the rest still fits.
score() {  # NAME FILE STEP_SECONDS TEST_SHARE
  local name=$1 file=$2 step=$3 share=$4 horizons="" 
  # The first whole step at or past a minute: a 10-second trace's 10–50 s are not within the bar's
  # 1–15 minutes (scoring them took the Azure code hour from 0.731 to 0.739).
  for ((s = (60 + step - 1) / step * step; s <= 900; s += step)); do
    [ $((s % 60)) -eq 0 ] && horizons+="${horizons:+,}$((s / 60))m" || horizons+="${horizons:+,}${s}s"
  done
  "$prescale" eval forecast --trace "$file" --horizons "$horizons" --test-share "$share" \
    --models "$wanted" --json "$work/$name.json" > "$work/$name.txt"
  "$prescale" eval forecast --trace "$file" --horizons "$horizons" --test-share "$share" \
    --models "$baselines" --baseline-intervals calibrated --json "$work/$name.cal.json" \
    > "$work/$name.cal.txt"
}

names=()
for f in "$data"/traces/*.csv; do
  name=$(basename "$f" .csv)
  case "$name" in
    azure-llm-*) score "$name" "$f" 10 0.45 ;;  # one hour at 10 s
    *) score "$name" "$f" 60 0.2 ;;
  esac
  names+=("$name")
done
twitter="$data/nab/data/realTweets/Twitter_volume_AMZN.csv"
if [ -f "$twitter" ]; then
  score Twitter_volume_AMZN "$twitter" 300 0.2  # 5-minute counts
  names+=(Twitter_volume_AMZN)
fi

python3 - "$work" "$baselines" "${names[@]}" <<'PY'
import json, sys
work, baselines, names = sys.argv[1], sys.argv[2].split(","), sys.argv[3:]
def averages(path):
    by_model = {}
    for r in json.load(open(path)):
        by_model.setdefault(r["model"], []).append(r)
    avg = {m: sum(r["pinball_p90"] for r in rs) / len(rs) for m, rs in by_model.items()}
    cover = {m: sum(r["coverage_p90"] for r in rs) / len(rs) for m, rs in by_model.items()}
    return avg, cover

print(f"{'trace':36} {'model':20} {'P90 pinball':>11} {'ratio':>7} {'vs calibrated':>13} {'P90 cover':>9}")
result, worst, worst_cal = [], 0.0, 0.0
for name in names:
    avg, cover = averages(f"{work}/{name}.json")
    cal, cal_cover = averages(f"{work}/{name}.cal.json")
    best = min(avg[b] for b in baselines if b in avg)
    best_cal = min(cal[b] for b in baselines if b in cal)
    for m in avg:
        print(f"{name:36} {m:20} {avg[m]:11.5f} {avg[m] / best:7.3f} {avg[m] / best_cal:13.3f} {cover[m]:9.3f}")
    for b in baselines:
        if b in cal:
            print(f"{name:36} {b + ' (calibrated)':20} {cal[b]:11.5f} {cal[b] / best:7.3f} {cal[b] / best_cal:13.3f} {cal_cover[b]:9.3f}")
    ratio, ratio_cal = avg["selected"] / best, avg["selected"] / best_cal
    worst, worst_cal = max(worst, ratio), max(worst_cal, ratio_cal)
    key = name.replace("-", "_")
    result.append(f"{key}_p90_ratio={ratio:.3f} {key}_p90_ratio_vs_calibrated={ratio_cal:.3f} "
                  f"{key}_cover90={cover['selected']:.3f}")
    print()
print("RESULT " + " ".join(result) +
      f" worst_p90_ratio={worst:.3f} worst_p90_ratio_vs_calibrated={worst_cal:.3f}")
PY
