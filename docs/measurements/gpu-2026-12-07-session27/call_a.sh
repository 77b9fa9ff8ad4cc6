#!/usr/bin/env bash
# Session 27, call A: session 26's calls B and C in one. Main ($MAIN/icl-lab.gz, split-state
# merged) against the same with Mamba's splits gathered into one cat ($DIR/icl-lab.gz,
# src/models/split.rs), each on a fresh kernel cache (the shipped seed d146faa7c2ec1844
# installed by its first process, so `bench models` shows the cold start): `bench models`,
# then 1 and 16 Mamba e128 members alternating binaries, then 1 and 16 GPT-2 e128 members.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s26b}; MAIN=${MAIN:-gpu/s26}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
gunzip -c $MAIN/icl-lab.gz > /tmp/main && gunzip -c $DIR/icl-lab.gz > /tmp/split && chmod +x /tmp/main /tmp/split
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
for bin in main split; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin timeout 120 /tmp/$bin bench models --steps 20 > "$OUT/models_$bin.txt" 2>&1
  log "models $bin (fresh cache) rc $?"; cat "$OUT/models_$bin.txt" >> "$OUT/log.txt"
done
for bin in main split main split; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin timeout 60 /tmp/$bin bench members --device cuda --config mamba-e128-l4-t82 --members 1,16 --steps 100 > /tmp/m.txt 2>&1
  log "members mamba $bin rc $?"; cat /tmp/m.txt >> "$OUT/log.txt"
done
ICL_LAB_KERNEL_CACHE=/tmp/kc-main timeout 90 /tmp/main bench members --device cuda --config gpt2-e128-l2-t82 --members 1,16 --steps 200 > /tmp/m.txt 2>&1
log "members gpt2 main rc $?"; cat /tmp/m.txt >> "$OUT/log.txt"
log done
