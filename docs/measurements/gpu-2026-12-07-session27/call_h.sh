#!/usr/bin/env bash
# Session 27, call H: GPT-2 against PyTorch eager in one call. Main before this session
# ($MAIN) and the shipped commit ($DIR), each on its own fresh kernel cache (its seed
# installed), GPT-2 e128 and e256, alternated twice; then tests/reference/torch_speed.py with
# TF32 matmuls (as ours round) and in fp32, on the same two configs.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; MAIN=${MAIN:-gpu/s26b}; DIR=${DIR:-gpu/s27d}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
gunzip -c $MAIN/icl-lab.gz > /tmp/main && gunzip -c $DIR/icl-lab.gz > /tmp/new && chmod +x /tmp/main /tmp/new
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
GPT=gpt2-e128-l2-t82,gpt2-e256-l12-t280
for i in 1 2; do for bin in main new; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin timeout 90 /tmp/$bin bench models --only $GPT --steps 100 > /tmp/m.txt 2>&1
  log "models $bin rc $?"; grep -E "^gpt2" /tmp/m.txt >> "$OUT/log.txt"
done; done
for mode in --tf32 ""; do
  timeout 120 python3 tests/reference/torch_speed.py --only $GPT --steps 100 $mode > /tmp/t.txt 2>&1; log "torch $mode rc $?"; tail -4 /tmp/t.txt >> "$OUT/log.txt"
done
log done
