"""Kernel time per kernel name (and launch shape) from an Nsight Compute CSV.

Make the CSV with only the duration metric (one replay per kernel, so a few hundred launches
take seconds), skipping the first steps' launches (compilation, warm-up):

    ncu --clock-control none --metrics gpu__time_duration.sum --launch-skip 3000 \
        --launch-count 800 --csv icl-lab bench members --config gpt2-e128-l2-t82 \
        --members 16 --steps 40 > ncu.csv
    python3 tests/gpu/ncu_summary.py ncu.csv --per-step-kernel matmul_entry --per-step 30

`--per-step-kernel NAME --per-step N`: a kernel name launched N times a step, to turn the
totals into milliseconds a step. ncu's own messages before the table are skipped.
"""

import argparse
import collections
import csv
import io
import sys

UNITS = {"nsecond": 1e-6, "ns": 1e-6, "usecond": 1e-3, "us": 1e-3, "msecond": 1.0, "ms": 1.0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--shapes", action="store_true", help="group by block and grid size too")
    ap.add_argument("--per-step-kernel", help="a kernel name (prefix) launched --per-step times a step")
    ap.add_argument("--per-step", type=int, default=0)
    args = ap.parse_args()
    lines = open(args.csv, encoding="utf-8", errors="replace").read().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith('"ID"')), None)
    if start is None:
        print(f"{args.csv}: no ncu table (no line starting with \"ID\")", file=sys.stderr)
        return 1
    totals = collections.defaultdict(lambda: [0, 0.0])
    grand, marker = 0.0, 0
    for row in csv.DictReader(io.StringIO("\n".join(lines[start:]))):
        unit = row["Metric Unit"].strip()
        if unit not in UNITS:
            print(f"unknown unit {unit!r}", file=sys.stderr)
            return 1
        ms = float(row["Metric Value"].replace(",", "")) * UNITS[unit]
        name = row["Kernel Name"][:80]
        key = (name, row["Block Size"], row["Grid Size"]) if args.shapes else (name,)
        totals[key][0] += 1
        totals[key][1] += ms
        grand += ms
        if args.per_step_kernel and name.startswith(args.per_step_kernel):
            marker += 1
    steps = marker / args.per_step if args.per_step_kernel and args.per_step and marker else None
    scale = f"ms a step (~{steps:.1f} steps)" if steps else "ms in all"
    print(f"{sum(c for c, _ in totals.values())} launches, {grand:.2f} ms of kernels; columns: {scale}, launches, kernel")
    for key, (count, ms) in sorted(totals.items(), key=lambda kv: -kv[1][1])[: args.top]:
        print(f"{ms / steps if steps else ms:9.3f} {count:6d}  {' '.join(key)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
