"""Per-kernel GPU time from CubeCL's profiling log, summed per kernel name per training step.

Make the log with CubeCL's own profiler (every launch waits for its kernel, so a step runs a few
times slower; the per-kernel times include ~10 us of launch overhead each):

    CUBECL_DEBUG_LOG=/tmp/prof.log CUBECL_DEBUG_OPTION=profile \
        icl-lab bench models --device cuda:0 --only gpt2-e256-l12-t280 --steps 20
    python3 tests/gpu/kernel_profile.py /tmp/prof.log --steps 20

Only the second half of the launches is summed (the first steps compile kernels), and a
launch over ten times its kernel's median (and over 2 ms) is dropped as a compilation.
"""

import argparse
import collections
import re
import statistics

UNITS = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}


def millis(text):
    m = re.match(r"([\d.]+)(ns|µs|us|ms|s)$", text.strip())
    return float(m.group(1)) * UNITS[m.group(2)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("--steps", type=float, required=True, help="training steps in the log")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    lines = [l for l in open(args.log, errors="replace") if l.startswith("| ")]
    half = lines[len(lines) // 2:]
    times = collections.defaultdict(list)
    for line in half:
        parts = line.rstrip("\n").split("|")
        name = re.sub(r"\s*\|\s*CudaRuntime", "", "|".join(parts[2:]).strip())
        fields = [f.strip() for f in name.split("|")]
        short = fields[0] + (" " + fields[1] if "Matmul" in fields[0] and len(fields) > 1 else "")
        times[short].append(millis(parts[1]))
    steps = args.steps / 2
    rows = []
    for name, v in times.items():
        med = statistics.median(v)
        kept = [x for x in v if x <= max(10 * med, 2.0)]
        rows.append((sum(kept) / steps, len(v) / steps, med, name))
    rows.sort(reverse=True)
    print(f"{len(half) / steps:.0f} launches a step, {sum(r[0] for r in rows):.2f} ms a step (profiled)")
    print(f"{'ms/step':>9} {'launches':>9} {'median us':>10}  kernel")
    for ms, n, med, name in rows[: args.top]:
        print(f"{ms:9.3f} {n:9.1f} {med * 1e3:10.1f}  {name}")


if __name__ == "__main__":
    main()
