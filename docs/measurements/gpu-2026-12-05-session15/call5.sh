#!/usr/bin/env bash
# Session 15, call 5: main's code at the session's end (046e702: adam-members merged, batches
# uploaded without staging; call 4's "nostaging" binary). (1) `bench members` 1 and 16 for
# GPT-2 e128 and Mamba e128; (2) PyTorch's e128 configs and ours in the same lease.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
gunzip -c gpu/s15f/main.gz > /tmp/main && chmod +x /tmp/main
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} ICL_LAB_KERNEL_CACHE=/tmp/kc-main
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
for config in gpt2-e128-l2-t82 mamba-e128-l4-t82; do
  log "members $config"
  timeout 100 /tmp/main bench members --device cuda --config $config --members 1,16 --steps 300 > /tmp/m.txt 2>&1; log "rc $?"
  cat /tmp/m.txt >> "$OUT/members.txt"; grep -E "^ +(1|16) " /tmp/m.txt | tee -a "$OUT/log.txt"
done
pip install --no-deps --target /tmp/site gpu/s15f/mambapy-1.2.0-py3-none-any.whl > /dev/null 2>&1
log "torch"
PYTHONPATH=/tmp/site timeout 90 python3 tests/reference/torch_speed.py --steps 100 --only gpt2-e128-l2-t82,mamba-e128-l4-t82 2>&1 | cut -c1-160 | tee -a "$OUT/log.txt"
log "ours"
timeout 60 /tmp/main bench models --steps 100 --only gpt2-e128-l2-t82,mamba-e128-l4-t82,mambaformer-e128-l4-t82 2>&1 | grep -v "^{" | tee -a "$OUT/log.txt"
log done
