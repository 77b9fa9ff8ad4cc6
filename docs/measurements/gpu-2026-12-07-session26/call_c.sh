#!/usr/bin/env bash
# Session 26, call C: main with split-state merged ($MAIN/icl-lab.gz) against the same with
# Mamba's splits gathered into one cat ($DIR/icl-lab.gz, src/models/split.rs), each on a fresh
# kernel cache (the shipped seed installed by its first process): `bench models`, then 1 and
# 16 Mamba e128 members, alternating binaries (MEMBER_BINS="" skips them).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s26b}; MAIN=${MAIN:-gpu/s26}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
gunzip -c $MAIN/icl-lab.gz > /tmp/main && gunzip -c $DIR/icl-lab.gz > /tmp/split && chmod +x /tmp/main /tmp/split
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
for bin in main split; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin timeout 100 /tmp/$bin bench models --steps 20 > "$OUT/models_$bin.txt" 2>&1
  log "models $bin (fresh cache) rc $?"; cat "$OUT/models_$bin.txt" >> "$OUT/log.txt"
done
for bin in ${MEMBER_BINS-main split main split}; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin timeout 60 /tmp/$bin bench members --device cuda --config mamba-e128-l4-t82 --members 1,16 --steps 100 > /tmp/m.txt 2>&1
  log "members $bin rc $?"; cat /tmp/m.txt >> "$OUT/log.txt"
done
log done
