#!/usr/bin/env bash
# Session 27, call B: where 16 members' GPU time goes now (main with the split, $DIR), for
# GPT-2 e128 and Mamba e128: Nsight Compute kernel durations over a window of launches after
# the first steps, summarised by tests/gpu/ncu_summary.py.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s26b}
BIN=/tmp/icl; gunzip -c $DIR/icl-lab.gz > $BIN && chmod +x $BIN
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} ICL_LAB_KERNEL_CACHE=/tmp/kc
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
$BIN bench members --device cuda --config gpt2-e128-l2-t82 --members 16 --steps 50 >> "$OUT/log.txt" 2>&1
for config in gpt2-e128-l2-t82 mamba-e128-l4-t82; do
  timeout 200 /usr/local/cuda/bin/ncu --clock-control none --metrics gpu__time_duration.sum \
    --launch-skip 4000 --launch-count 1200 --csv $BIN bench members --device cuda --config $config \
    --members 16 --steps 80 > "$OUT/ncu_$config.csv" 2>> "$OUT/ncu_err.txt"
  log "ncu $config rc $?"
  python3 tests/gpu/ncu_summary.py "$OUT/ncu_$config.csv" --top 40 >> "$OUT/log.txt" 2>&1
done
log done
