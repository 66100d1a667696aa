#!/usr/bin/env python3
"""How far below naive can a P90 forecast go on a trace? A non-causal reference.

For each horizon h (steps), scores on the trace's held-out tail (the last --test-share):
  - naive with its textbook interval: the value h steps back plus the 90th percentile of the
    naive h-step errors over the fitted part (what `prescale eval forecast` gives "naive");
  - a *non-causal* centred mean: the mean of the k steps on either side of the target step
    (the target itself left out) plus the 90th percentile of its errors over the fitted part.
The centred mean sees the future around the step it "forecasts"; no forecaster can. Its P90
pinball relative to naive's, averaged over the horizons, is therefore a generous estimate of
the best ratio a real forecaster could reach on the trace: where it is above ~0.8, issue 4's
forecast bar (selected model ≤ 0.8 × naive) asks for more than the trace holds.

Reads `timestamp,count` CSVs (NASA, NAB) and per-request CSVs (Azure: one row per request, the
first column a timestamp), binned to --step seconds. Ends with a RESULT line.

Usage: bench/forecast_ceiling.py --trace FILE --step SECONDS [--test-share 0.2] [--k 2]
       [--max-horizon-seconds 900]
"""
import argparse
import csv
import datetime
import sys


def read_counts(path, step):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], [r for r in rows[1:] if r]
    def when(text):
        text = text.strip()[:26]
        for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
            try:
                return datetime.datetime.strptime(text, fmt).timestamp()
            except ValueError:
                pass
        raise SystemExit(f"{path}: cannot read the timestamp {text!r} (column {header[0]!r})")
    per_request = len(header) != 2 or not rows[0][1].strip().isdigit()
    times = [when(r[0]) for r in rows]
    start = min(times)
    bins = {}
    for t, r in zip(times, rows):
        b = int((t - start) // step)
        bins[b] = bins.get(b, 0.0) + (1.0 if per_request else float(r[1]))
    n = max(bins) + 1
    counts = [bins.get(i, 0.0) for i in range(n)]
    if per_request and len(counts) > 1:
        counts.pop()  # the last bin is partial
    return counts


def quantile(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(p * len(v)))]


def pinball90(actual, forecast):
    return sum(0.9 * (a - f) if a > f else 0.1 * (f - a) for a, f in zip(actual, forecast))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trace", required=True)
    ap.add_argument("--step", type=float, required=True, help="seconds per step")
    ap.add_argument("--test-share", type=float, default=0.2)
    ap.add_argument("--k", type=int, default=2, help="steps on either side of the centred mean")
    ap.add_argument("--max-horizon-seconds", type=float, default=900)
    a = ap.parse_args()
    y = read_counts(a.trace, a.step)
    n = len(y)
    split = int(n * (1 - a.test_share))
    k = a.k
    if split < 10 * k or n - split < 10:
        sys.exit(f"{a.trace}: {n} steps of {a.step:g} s are too few")
    centred = [None] * n
    for i in range(k, n - k):
        centred[i] = (sum(y[i - k:i]) + sum(y[i + 1:i + k + 1])) / (2 * k)
    residual = [y[i] - centred[i] for i in range(k, split) if centred[i] is not None]
    offset = quantile(residual, 0.9)
    targets = [t for t in range(split, n - k)]
    smooth = pinball90([y[t] for t in targets], [centred[t] + offset for t in targets])
    ratios = []
    horizons = range(1, max(1, int(a.max_horizon_seconds // a.step)) + 1)
    for h in horizons:
        errors = [y[i + h] - y[i] for i in range(split - h)]
        q = quantile(errors, 0.9)
        naive = pinball90([y[t] for t in targets], [y[t - h] + q for t in targets])
        ratios.append(smooth / naive if naive > 0 else float("nan"))
    for h, r in zip(horizons, ratios):
        print(f"horizon {h * a.step:6.0f} s  centred-mean / naive P90 pinball {r:.3f}")
    mean = sum(ratios) / len(ratios)
    name = a.trace.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    print(f"{name}: {n} steps of {a.step:g} s, scored on the last {n - split}; "
          f"centred mean of ±{k} steps, averaged over {len(ratios)} horizons: {mean:.3f}")
    print(f"RESULT trace={name} noncausal_p90_ratio_vs_naive={mean:.3f} "
          f"at_first_horizon={ratios[0]:.3f} k={k}")


if __name__ == "__main__":
    main()
