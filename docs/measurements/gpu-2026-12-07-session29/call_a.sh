#!/usr/bin/env bash
# Session 29, call A: $DIR has the scan's backward taking softplus once a step (the
# recompute keeps Δ and its slope in shared memory for the adjoint) and Mamba's gate
# y·silu(z) inside the scan (z read in place); against $BASE (main 48e5ed2's kernels, seed
# 506989476b7a2e9c). The seed for $DIR (sweep cut at 120 s), the scan's check,
# Nsight kernel times of 16 Mamba members, then 1 and 16 Mamba e128 members of both
# alternating.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; BASE=${BASE:-gpu/opt}; DIR=${DIR:-gpu/s29b}
DIR=$DIR SWEEP_S=${SWEEP_S:-120} bash tests/gpu/seed_cache.sh
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
for b in base:$BASE new:$DIR; do gunzip -c ${b#*:}/icl-lab.gz > /tmp/${b%%:*} && chmod +x /tmp/${b%%:*}; done
cp -r /tmp/seed-kc /tmp/kc-new
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
ICL_LAB_KERNEL_CACHE=/tmp/kc-new timeout 120 /tmp/new bench scan --check --reps 5 --against none > /tmp/m.txt 2>&1
log "scan check new rc $?"; cat /tmp/m.txt >> "$OUT/log.txt"
ICL_LAB_KERNEL_CACHE=/tmp/kc-new timeout 60 /usr/local/cuda/bin/ncu --clock-control none --metrics gpu__time_duration.sum \
  --launch-skip 4000 --launch-count 1200 --csv /tmp/new bench members --device cuda --config mamba-e128-l4-t82 \
  --members 16 --steps 80 > "$OUT/ncu_mamba.csv" 2>> "$OUT/ncu_err.txt"
log "ncu mamba rc $?"
python3 tests/gpu/ncu_summary.py "$OUT/ncu_mamba.csv" --shapes --top 12 >> "$OUT/log.txt" 2>&1
for bin in base new base new; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin timeout 40 /tmp/$bin bench members --device cuda --config mamba-e128-l4-t82 --members 1,16 --steps 100 > /tmp/m.txt 2>&1
  log "members mamba-e128-l4-t82 $bin rc $?"; grep -E "^ +(1|16) " /tmp/m.txt >> "$OUT/log.txt"
done
log done
