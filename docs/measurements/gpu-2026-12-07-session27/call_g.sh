#!/usr/bin/env bash
# Session 27, call G: the commit that ships seed 16b18f818d42c4a3 ($DIR), on a fresh kernel
# cache with nothing set (the first process installs the shipped seed): `bench models`, then
# 1 and 16 members of GPT-2 e128 and Mamba e128.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s27d}
BIN=/tmp/icl; gunzip -c $DIR/icl-lab.gz > $BIN && chmod +x $BIN
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} ICL_LAB_KERNEL_CACHE=/tmp/kc-fresh
rm -rf /tmp/kc-fresh
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
timeout 150 $BIN bench models --steps 40 > /tmp/m.txt 2>&1; log "models (fresh cache) rc $?"; cat /tmp/m.txt >> "$OUT/log.txt"
for config in gpt2-e128-l2-t82 mamba-e128-l4-t82; do
  timeout 60 $BIN bench members --device cuda --config $config --members 1,16 --steps 200 > /tmp/m.txt 2>&1
  log "members $config rc $?"; cat /tmp/m.txt >> "$OUT/log.txt"
done
log done
