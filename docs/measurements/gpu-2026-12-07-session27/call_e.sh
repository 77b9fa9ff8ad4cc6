#!/usr/bin/env bash
# Session 27, call E: main with the split ($MAIN), + activations as one step ($MID,
# src/models/pointwise.rs), + the one-output read-out on our matmul and plain models' read-in
# and read-out through `dense` ($DIR). First the linear layers' check on the GPU (new: the
# one-output read-out, plain and 16 members); then, main and mid on fresh kernel caches (their
# shipped seed installed) and the newest on the cache call D seeded, `bench models` (Mamba e256 three times more, alternating: call C saw it 66 → 77 ms in one
# sample each), and 1 and 16 members of GPT-2 e128 and Mamba e128, alternating; then where 16
# members' GPU time goes with the newest binary (Nsight Compute kernel durations).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; [ -d /tmp/seed-kc ] && cp -r /tmp/seed-kc /tmp/kc-new; MAIN=${MAIN:-gpu/s26b}; MID=${MID:-gpu/s27}; DIR=${DIR:-gpu/s27b}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
for b in main:$MAIN mid:$MID new:$DIR; do gunzip -c ${b#*:}/icl-lab.gz > /tmp/${b%%:*} && chmod +x /tmp/${b%%:*}; done
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
ICL_LAB_KERNEL_CACHE=/tmp/kc-new timeout 90 /tmp/new bench matmul --check --strategies gemm-128x128-w2x4-s3 --reps 3 > /tmp/m.txt 2>&1
log "matmul check new rc $?"; tail -40 /tmp/m.txt >> "$OUT/log.txt"
for bin in main new; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin timeout 120 /tmp/$bin bench models --steps 40 > /tmp/m.txt 2>&1
  log "models $bin (fresh cache) rc $?"; cat /tmp/m.txt >> "$OUT/log.txt"
done
for i in 1 2; do for bin in main mid new; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin timeout 60 /tmp/$bin bench models --steps 40 --only mamba-e256-l24-t280 > /tmp/m.txt 2>&1
  log "mamba e256 $bin rc $?"; grep mamba /tmp/m.txt >> "$OUT/log.txt"
done; done
for config in gpt2-e128-l2-t82 mamba-e128-l4-t82; do
  for bin in main mid new main mid new; do
    ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin timeout 60 /tmp/$bin bench members --device cuda --config $config --members 1,16 --steps 100 > /tmp/m.txt 2>&1
    log "members $config $bin rc $?"; grep -E "^ +(1|16) " /tmp/m.txt >> "$OUT/log.txt"
  done
done
for config in ${NCU_CONFIGS:-mamba-e128-l4-t82 gpt2-e128-l2-t82}; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-new timeout 200 /usr/local/cuda/bin/ncu --clock-control none --metrics gpu__time_duration.sum \
    --launch-skip 4000 --launch-count 1200 --csv /tmp/new bench members --device cuda --config $config \
    --members 16 --steps 80 > "$OUT/ncu_$config.csv" 2>> "$OUT/ncu_err.txt"
  log "ncu $config rc $?"
  python3 tests/gpu/ncu_summary.py "$OUT/ncu_$config.csv" --shapes --top 30 >> "$OUT/log.txt" 2>&1
done
log done
