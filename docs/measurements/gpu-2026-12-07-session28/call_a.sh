#!/usr/bin/env bash
# Session 28, call A: the linear layers' bias added in our matmul's epilogue ($BIAS) and, on
# top, softplus of Mamba's Δ inside the scan kernels ($DIR), against main ($MAIN). First the
# kernel seed for $DIR (its sweep cut at 120 s); then the linear layers' check (bias in every
# form) and the scan's (raw Δ rows new) on the GPU; then 1 and 16 members of GPT-2 e128 and
# Mamba e128, the three alternating (main on a fresh cache with its shipped seed, the others
# on the cache just seeded).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; MAIN=${MAIN:-gpu/main}; BIAS=${BIAS:-gpu/s28}; DIR=${DIR:-gpu/s28b}
DIR=$DIR SWEEP_S=${SWEEP_S:-120} bash tests/gpu/seed_cache.sh
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
for b in main:$MAIN bias:$BIAS new:$DIR; do gunzip -c ${b#*:}/icl-lab.gz > /tmp/${b%%:*} && chmod +x /tmp/${b%%:*}; done
cp -r /tmp/seed-kc /tmp/kc-new && cp -r /tmp/seed-kc /tmp/kc-bias
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
ICL_LAB_KERNEL_CACHE=/tmp/kc-new timeout 90 /tmp/new bench matmul --check --strategies gemm-128x128-w2x4-s3 --reps 3 > /tmp/m.txt 2>&1
log "matmul check new rc $?"; tail -40 /tmp/m.txt >> "$OUT/log.txt"
ICL_LAB_KERNEL_CACHE=/tmp/kc-new timeout 120 /tmp/new bench scan --check --reps 3 --against none > /tmp/m.txt 2>&1
log "scan check new rc $?"; cat /tmp/m.txt >> "$OUT/log.txt"
for config in gpt2-e128-l2-t82 mamba-e128-l4-t82; do
  for bin in main bias new main bias new; do
    ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin timeout 45 /tmp/$bin bench members --device cuda --config $config --members 1,16 --steps 100 > /tmp/m.txt 2>&1
    log "members $config $bin rc $?"; grep -E "^ +(1|16) " /tmp/m.txt >> "$OUT/log.txt"
  done
done
log done
