#!/usr/bin/env bash
# Session 13, call 4: ncu kernel durations over about two 16-member Mamba e128 steps (final
# main, scan-members merged; the shipped kernels make the start short).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
gunzip -c gpu/s13/icl-lab.gz > /tmp/icl && chmod +x /tmp/icl
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} ICL_LAB_KERNEL_CACHE=/tmp/kc
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
timeout 150 /usr/local/cuda/bin/ncu --clock-control none --metrics gpu__time_duration.sum --launch-skip 4000 --launch-count 1200 --csv \
  /tmp/icl bench members --device cuda --config mamba-e128-l4-t82 --members 16 --steps 30 > "$OUT/ncu_mamba_16.csv" 2>> "$OUT/log.txt"
echo "ncu rc $?" | tee -a "$OUT/log.txt"
python3 tests/gpu/ncu_summary.py "$OUT/ncu_mamba_16.csv" --top 40 > "$OUT/summary.txt" 2>&1
head -60 "$OUT/summary.txt"
gzip -f "$OUT/ncu_mamba_16.csv"
