#!/usr/bin/env bash
# For the session after 23: where the per-channel forward's ~1 µs a step goes. At issue 7's
# shape it runs ~1.1 ms with 8 warps an SM and as long with 16 (split in two), far from its
# issue (~0.15 ms) and DRAM (~0.12 ms) bounds. Nsight Compute's stall reasons and memory
# tables for the forward and backward kernels, if the machine has `ncu` and lets it read the
# counters. $DIR holds the build (icl-lab.gz).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s23c}
B=/tmp/icl; gunzip -c $DIR/icl-lab.gz > $B && chmod +x $B
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} ICL_LAB_KERNEL_CACHE=/tmp/kc
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
echo "ncu: ${NCU:-none}" | tee "$OUT/log.txt"
[ -n "$NCU" ] || exit 0
timeout 60 $B bench scan --shape 64,1024,512,16 --against none --reps 2 > /dev/null 2>&1  # compile into the cache
timeout 400 $NCU --kernel-name regex:icl_scan --launch-skip 2 --launch-count 4 --set full \
  --section WarpStateStats --section MemoryWorkloadAnalysis_Tables --csv --page details \
  $B bench scan --shape 64,1024,512,16 --against none --reps 2 > "$OUT/ncu.csv" 2> "$OUT/ncu_err.txt"
echo "ncu rc $?" | tee -a "$OUT/log.txt"
grep -iE "stall|Throughput|Hit Rate|Achieved Occupancy|Duration" "$OUT/ncu.csv" | head -80 >> "$OUT/log.txt"
