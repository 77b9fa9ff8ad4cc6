#!/usr/bin/env bash
# Session 13, call 2: the kernel-cache seed for the merged main (scan-members in), then ncu
# kernel durations over about two 16-member Mamba steps with that cache warm.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
DIR=gpu/s13 bash tests/gpu/seed_cache.sh
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} ICL_LAB_KERNEL_CACHE=/tmp/seed-kc
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/seed_log.txt"
echo "== $(date +%T) ncu" >> "$OUT/seed_log.txt"
timeout 150 /usr/local/cuda/bin/ncu --clock-control none --metrics gpu__time_duration.sum --launch-skip 4000 --launch-count 1200 --csv \
  /tmp/icl-seed bench members --device cuda --config mamba-e128-l4-t82 --members 16 --steps 30 > "$OUT/ncu_mamba_16.csv" 2>> "$OUT/seed_log.txt"
echo "== $(date +%T) done $?" >> "$OUT/seed_log.txt"
gzip -f "$OUT/ncu_mamba_16.csv"
tail -30 "$OUT/seed_log.txt"
