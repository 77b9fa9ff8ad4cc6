#!/usr/bin/env bash
# Session 27, call C: main ($MAIN/icl-lab.gz, with the split) against activations as one
# autodiff step each ($DIR/icl-lab.gz, src/models/pointwise.rs), each on a fresh kernel cache:
# `bench models`, then 1 and 16 members of GPT-2 e128 and Mamba e128 alternating binaries, then
# where 16 GPT-2 members' GPU time goes with the new binary (Nsight Compute kernel durations).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s27}; MAIN=${MAIN:-gpu/s26b}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
gunzip -c $MAIN/icl-lab.gz > /tmp/main && gunzip -c $DIR/icl-lab.gz > /tmp/new && chmod +x /tmp/main /tmp/new
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
for bin in main new; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin timeout 120 /tmp/$bin bench models --steps 20 > /tmp/m.txt 2>&1
  log "models $bin (fresh cache) rc $?"; cat /tmp/m.txt >> "$OUT/log.txt"
done
for config in ${CONFIGS:-gpt2-e128-l2-t82 mamba-e128-l4-t82}; do
  for bin in main new main new; do
    ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin timeout 60 /tmp/$bin bench members --device cuda --config $config --members 1,16 --steps 100 > /tmp/m.txt 2>&1
    log "members $config $bin rc $?"; cat /tmp/m.txt >> "$OUT/log.txt"
  done
done
for config in ${NCU_CONFIGS:-gpt2-e128-l2-t82}; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-new timeout 200 /usr/local/cuda/bin/ncu --clock-control none --metrics gpu__time_duration.sum \
    --launch-skip 4000 --launch-count 1200 --csv /tmp/new bench members --device cuda --config $config \
    --members 16 --steps 80 > "$OUT/ncu_$config.csv" 2>> "$OUT/ncu_err.txt"
  log "ncu $config rc $?"
  python3 tests/gpu/ncu_summary.py "$OUT/ncu_$config.csv" --shapes --top 30 >> "$OUT/log.txt" 2>&1
done
log done
