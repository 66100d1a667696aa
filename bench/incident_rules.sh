#!/usr/bin/env bash
# Incidents against the alert a team would write by hand: on the same simulated runs (every
# policy's minutes of every service), how many pages each rule raises, how long they last, and
# what share of the requests that missed the SLO fell in minutes it was firing.
#   - burn rate: Prescale's incidents (docs/healing.md, "Incidents"): the SRE workbook's
#     multiwindow, multi-burn-rate rules (14.4x over 1h and 5m, 6x over 6h and 30m, 10 bad
#     requests in the short window), as `prescale sim` counts them;
#   - threshold: the workbook's first approach, what a Prometheus rule on the bad share reads at
#     first: firing while the last 10 minutes' bad share is at or above the error budget.
# The script replays the burn-rate rules on the minutes too (for the share and the hours) and
# checks that it counts the incidents `prescale sim` counted.
#
# Usage: bench/incident_rules.sh [--peak-rps X] [--topology T]
# Env:   PRESCALE=path/to/prescale (default build/apps/prescale/prescale)
#        PRESCALE_DATA_DIR=path/to/shared/data (default ../shared/data)
# Ends with a RESULT line: pages and missed-request shares of both rules over all runs, and the
# ratio of pages (burn rate / threshold).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

peak=3000 topology=single
while [ $# -gt 0 ]; do
  case "$1" in
    --peak-rps) peak=$2; shift 2 ;;
    --topology) topology=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
sim_bench_setup
n=0
for trace in "${traces[@]}"; do
  n=$((n + 1))
  echo "[$n/${#traces[@]}] $(basename "$trace" .csv) on $topology" >&2
  "$prescale" sim --trace "$trace" --topology "$topology" --data-dir "$data" --peak-rps "$peak" \
    --policies prescale,hpa,kpa,aws --progress never \
    --timeline "$work/$n.csv" --json "$work/$n.json" > /dev/null
done

python3 - "$work" "$n" <<'PY'
import bisect, csv, json, os, sys
from collections import defaultdict, deque

work, n = sys.argv[1], int(sys.argv[2])
BUDGET = 0.001

def prefix(minutes):
    """Running totals of requests and bad ones, and each record's end (seconds)."""
    req, bad, ends = [0.0], [0.0], []
    t = 0.0
    for r, b, seconds in minutes:
        req.append(req[-1] + r)
        bad.append(bad[-1] + b)
        t += seconds
        ends.append(t)
    return req, bad, ends

def window(sums, i, seconds):
    """Requests and bad ones of the records through record i that end after its end less
    `seconds`: the watch's time windows (fewer records at the start)."""
    req, bad, ends = sums
    lo = bisect.bisect_right(ends, ends[i] - seconds, 0, i + 1)
    return req[i + 1] - req[lo], bad[i + 1] - bad[lo]

def burn_rate_rule(minutes):
    """The workbook's two paging rules, as IncidentWatch runs them: firing per record."""
    rules = [(3600, 300, 14.4), (21600, 1800, 6.0)]
    sums = prefix(minutes)
    firing = []
    for i in range(len(minutes)):
        fires = False
        for long_s, short_s, rate in rules:
            sr, sb = window(sums, i, short_s)
            lr, lb = window(sums, i, long_s)
            if (sr > 0 and lr > 0 and sb >= 10 and sb / sr >= rate * BUDGET
                    and lb / lr >= rate * BUDGET):
                fires = True
                break
        firing.append(fires)
    return firing

def threshold_rule(minutes):
    """Firing while the last 10 minutes' bad share is at or above the budget."""
    sums = prefix(minutes)
    firing = []
    for i in range(len(minutes)):
        req, bad = window(sums, i, 600)
        firing.append(req > 0 and bad / req >= BUDGET)
    return firing

def pages(firing):
    return sum(1 for i, f in enumerate(firing) if f and (i == 0 or not firing[i - 1]))

totals = defaultdict(lambda: {"burn": [0, 0.0, 0.0], "threshold": [0, 0.0, 0.0], "bad": 0.0})
rows = []
mismatch = []
for i in range(1, n + 1):
    runs = json.load(open(os.path.join(work, f"{i}.json")))
    trace = runs[0]["trace"]
    counted = {r["policy"]: (r["incidents"], r["incident_hours"]) for r in runs}
    series = defaultdict(list)
    with open(os.path.join(work, f"{i}.csv")) as f:
        for row in csv.DictReader(f):
            served, within, dropped, seconds = (
                float(row[k]) for k in ("served", "served_within_slo", "dropped", "seconds"))
            series[(row["policy"], row["service"])].append(
                (served + dropped, served - within + dropped, seconds))
    per_policy = defaultdict(lambda: {"burn": [0, 0.0, 0.0], "threshold": [0, 0.0, 0.0], "bad": 0.0})
    for (policy, _), minutes in series.items():
        p = per_policy[policy]
        p["bad"] += sum(b for _, b, _ in minutes)
        for name, rule in (("burn", burn_rate_rule), ("threshold", threshold_rule)):
            firing = rule(minutes)
            p[name][0] += pages(firing)
            p[name][1] += sum(sec for (_, _, sec), f in zip(minutes, firing) if f) / 3600
            p[name][2] += sum(b for (_, b, _), f in zip(minutes, firing) if f)
    for policy, p in per_policy.items():
        # The timeline's counts are rounded to 3 decimals: a count right at a rule's threshold
        # could differ; say so rather than hide it.
        incidents, hours = counted.get(policy, (None, None))
        if p["burn"][0] != incidents or abs(p["burn"][1] - hours) > 1e-6 * max(1.0, hours):
            mismatch.append(f"{trace}/{policy}: {p['burn'][0]} incidents, {p['burn'][1]:.4f} h "
                            f"here; {incidents}, {hours:.4f} h by prescale sim")
        rows.append((trace, policy, p))
        t = totals[policy]
        t["bad"] += p["bad"]
        for name in ("burn", "threshold"):
            for k in range(3):
                t[name][k] += p[name][k]

def share(p, name):
    return 100 * p[name][2] / p["bad"] if p["bad"] > 0 else 0.0

print("| trace | policy | burn-rate pages (hours) | its share of the misses | threshold pages (hours) | its share |")
print("|---|---|---|---|---|---|")
for trace, policy, p in rows:
    print(f"| {trace} | {policy} | {p['burn'][0]} ({p['burn'][1]:.1f}) | {share(p, 'burn'):.1f} % | "
          f"{p['threshold'][0]} ({p['threshold'][1]:.1f}) | {share(p, 'threshold'):.1f} % |")
all_ = {"burn": [0, 0.0, 0.0], "threshold": [0, 0.0, 0.0], "bad": 0.0}
for t in totals.values():
    all_["bad"] += t["bad"]
    for name in ("burn", "threshold"):
        for k in range(3):
            all_[name][k] += t[name][k]
print()
for m in mismatch:
    print("MISMATCH", m)
ratio = all_["burn"][0] / all_["threshold"][0] if all_["threshold"][0] else float("nan")
print(f"RESULT burn_rate_pages={all_['burn'][0]} threshold_pages={all_['threshold'][0]} "
      f"page_ratio_vs_threshold={ratio:.3f} burn_rate_miss_share={share(all_, 'burn'):.1f} "
      f"threshold_miss_share={share(all_, 'threshold'):.1f} "
      f"burn_rate_hours={all_['burn'][1]:.1f} threshold_hours={all_['threshold'][1]:.1f} "
      f"mismatches={len(mismatch)}")
sys.exit(1 if mismatch else 0)
PY
