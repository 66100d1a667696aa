#!/usr/bin/env bash
# Anomaly detection on the Numenta Anomaly Benchmark: `prescale eval anomaly` runs the healer's
# detector (deviation) and NAB's windowedGaussian (the peer, as numenta/NAB runs it) on all 58
# series and scores both as NAB does, for each scoring profile (standard, reward_low_FP_rate,
# reward_low_FN_rate): normalised 0 (detects nothing) to 100 (every window at its start, no false
# positive), at the one threshold per detector and profile that does best over the corpus.
# Ends with a RESULT line: our scores, the peer's, and their ratios.
#
# Usage: bench/anomaly.sh [--nab DIR]
#   --nab DIR   NAB's folder (default ../shared/data/nab)
# Env:   PRESCALE=path/to/prescale (default build/apps/prescale/prescale)
set -euo pipefail
cd "$(dirname "$0")/.."

nab=../shared/data/nab
while [ $# -gt 0 ]; do
  case "$1" in
    --nab) nab=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
prescale=${PRESCALE:-build/apps/prescale/prescale}
[ -x "$prescale" ] || { echo "missing $prescale: run make build" >&2; exit 1; }
[ -f "$nab/labels/combined_windows.json" ] || { echo "no NAB at $nab: pass --nab" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$prescale" eval anomaly --nab "$nab" --json "$work/nab.json"
python3 - "$work/nab.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
score = {(r["detector"], r["profile"]): r["score"] for r in rows}
short = {"standard": "standard", "reward_low_FP_rate": "low_fp", "reward_low_FN_rate": "low_fn"}
parts = []
for profile, key in short.items():
    ours, peer = score[("deviation", profile)], score[("windowed_gaussian", profile)]
    parts += [f"nab_{key}={ours:.2f}", f"nab_{key}_windowed_gaussian={peer:.2f}",
              f"ratio_{key}_vs_windowed_gaussian={ours / peer:.3f}"]
print("RESULT " + " ".join(parts))
PY
