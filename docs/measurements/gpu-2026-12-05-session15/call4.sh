#!/usr/bin/env bash
# Session 15, call 4. main = call 3's new (adam-members merged); nostaging = main with
# batches uploaded from a plain Vec instead of through B::staging (pinned memory, a blocking
# round trip to CubeCL's device thread). (1) `bench members` 1 and 16 for GPT-2 e128 and
# Mamba e128, main / nostaging / main / nostaging; (2) step phases of both at 16 GPT-2
# members; (3) PyTorch's e128 configs in the same lease, then main's `bench models` rows.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
for b in main nostaging; do gunzip -c gpu/s15e/$b.gz > /tmp/$b && chmod +x /tmp/$b; done
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
for rep in 1 2; do
  for config in gpt2-e128-l2-t82 mamba-e128-l4-t82; do
    for bin in main nostaging; do
      log "$bin $config rep $rep"
      ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin timeout 100 /tmp/$bin bench members --device cuda --config $config --members 1,16 --steps 300 > "$OUT/members_${bin}_${config}_$rep.txt" 2>&1; log "rc $?"
      grep -E "^ +(1|16) " "$OUT/members_${bin}_${config}_$rep.txt" | tee -a "$OUT/log.txt"
    done
  done
done
for bin in main nostaging; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin ICL_LAB_STEP_PHASES=1 timeout 60 /tmp/$bin bench members --device cuda --config gpt2-e128-l2-t82 --members 16 --steps 300 > "$OUT/phases_$bin.txt" 2>&1
  log "$bin phases: $(grep phases "$OUT/phases_$bin.txt")"
done
pip install --no-deps --target /tmp/site gpu/whl/mambapy-1.2.0-py3-none-any.whl > /dev/null 2>&1
log "torch"
PYTHONPATH=/tmp/site timeout 120 python3 tests/reference/torch_speed.py --steps 100 --only gpt2-e128-l2-t82,mamba-e128-l4-t82,mambaformer-e128-l4-t82 > "$OUT/torch.txt" 2> "$OUT/torch_err.txt"; log "rc $?"; cut -c1-120 "$OUT/torch.txt"
ICL_LAB_KERNEL_CACHE=/tmp/kc-main timeout 60 /tmp/main bench models --steps 100 --only gpt2-e128-l2-t82,mamba-e128-l4-t82,mambaformer-e128-l4-t82 > "$OUT/models.txt" 2>&1; log "models rc $?"; cat "$OUT/models.txt" | grep -v "^{"
log done
