#!/usr/bin/env bash
# Session 28, call B: the commit to ship ($DIR: the bias in our matmul's epilogue, emitted only
# in the biased form; softplus of Δ in the scan on the fast exp/log with Goldberg's log1p).
# Its kernel seed (sweep cut at 120 s); the linear layers' and the scan's checks on the GPU
# (raw Δ rows: call A's crashed in the comparison's own set-up); then 1 and 16 members of
# Mamba e128 for main ($MAIN), call A's binary ($A: log1pf) and this one, alternating, and
# GPT-2 e128 once each; then Nsight kernel times of 16 Mamba members on this one.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; MAIN=${MAIN:-gpu/main}; A=${A:-gpu/s28b}; DIR=${DIR:-gpu/s28c}
DIR=$DIR SWEEP_S=${SWEEP_S:-120} bash tests/gpu/seed_cache.sh
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
for b in main:$MAIN a:$A new:$DIR; do gunzip -c ${b#*:}/icl-lab.gz > /tmp/${b%%:*} && chmod +x /tmp/${b%%:*}; done
cp -r /tmp/seed-kc /tmp/kc-new
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
ICL_LAB_KERNEL_CACHE=/tmp/kc-new timeout 90 /tmp/new bench matmul --check --strategies gemm-128x128-w2x4-s3 --reps 3 > /tmp/m.txt 2>&1
log "matmul check new rc $?"; grep -E "check:|gemm-128" /tmp/m.txt >> "$OUT/log.txt"
ICL_LAB_KERNEL_CACHE=/tmp/kc-new timeout 120 /tmp/new bench scan --check --reps 3 --against none > /tmp/m.txt 2>&1
log "scan check new rc $?"; cat /tmp/m.txt >> "$OUT/log.txt"
for bin in main a new main a new; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin timeout 60 /tmp/$bin bench members --device cuda --config mamba-e128-l4-t82 --members 1,16 --steps 100 > /tmp/m.txt 2>&1
  log "members mamba-e128-l4-t82 $bin rc $?"; grep -E "^ +(1|16) " /tmp/m.txt >> "$OUT/log.txt"
done
for bin in main new; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin timeout 60 /tmp/$bin bench members --device cuda --config gpt2-e128-l2-t82 --members 1,16 --steps 100 > /tmp/m.txt 2>&1
  log "members gpt2-e128-l2-t82 $bin rc $?"; grep -E "^ +(1|16) " /tmp/m.txt >> "$OUT/log.txt"
done
ICL_LAB_KERNEL_CACHE=/tmp/kc-new timeout 120 /usr/local/cuda/bin/ncu --clock-control none --metrics gpu__time_duration.sum \
  --launch-skip 4000 --launch-count 1200 --csv /tmp/new bench members --device cuda --config mamba-e128-l4-t82 \
  --members 16 --steps 80 > "$OUT/ncu_mamba.csv" 2>> "$OUT/ncu_err.txt"
log "ncu mamba rc $?"
python3 tests/gpu/ncu_summary.py "$OUT/ncu_mamba.csv" --shapes --top 30 >> "$OUT/log.txt" 2>&1
log done
