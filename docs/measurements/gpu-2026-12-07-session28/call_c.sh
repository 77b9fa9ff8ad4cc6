#!/usr/bin/env bash
# Session 28, call C: the commit that ships seed 3d25f01e8a6dbebd ($DIR) against main at the
# session's start ($MAIN, 67fa356), both on fresh kernel caches with their shipped seeds:
# `bench models` (start to first step, ms/step, peak memory) for each; 1 and 16 members of
# GPT-2 e128 and Mamba e128, alternating three times; GPT-2 e128 and e256 against PyTorch with
# TF32 in the same call.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; MAIN=${MAIN:-gpu/main}; DIR=${DIR:-gpu/final}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
gunzip -c $MAIN/icl-lab.gz > /tmp/main && gunzip -c $DIR/icl-lab.gz > /tmp/new && chmod +x /tmp/main /tmp/new
rm -rf /tmp/kc-main /tmp/kc-new
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
for bin in new main; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin timeout 120 /tmp/$bin bench models --steps 40 > /tmp/m.txt 2>&1
  log "models $bin (fresh cache) rc $?"; cat /tmp/m.txt >> "$OUT/log.txt"
done
for config in gpt2-e128-l2-t82 mamba-e128-l4-t82; do
  for bin in main new main new main new; do
    ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin timeout 45 /tmp/$bin bench members --device cuda --config $config --members 1,16 --steps 100 > /tmp/m.txt 2>&1
    log "members $config $bin rc $?"; grep -E "^ +(1|16) " /tmp/m.txt >> "$OUT/log.txt"
  done
done
GPT=gpt2-e128-l2-t82,gpt2-e256-l12-t280
for bin in main new; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin timeout 90 /tmp/$bin bench models --only $GPT --steps 100 > /tmp/m.txt 2>&1
  log "models $bin rc $?"; grep -E "^gpt2" /tmp/m.txt >> "$OUT/log.txt"
done
timeout 120 python3 tests/reference/torch_speed.py --only $GPT --steps 100 --tf32 > /tmp/t.txt 2>&1; log "torch --tf32 rc $?"; tail -4 /tmp/t.txt >> "$OUT/log.txt"
log done
