#!/usr/bin/env bash
# Session 14, call 3. b2 = call 2's binary (batches uploaded from pageable memory, drawn on the
# step's path); b3 = b2 + batches staged in pinned memory and drawn a step ahead on another
# thread (kernels unchanged since call 1's b). (1) `bench members` 1 and 16, GPT-2 e128 and
# Mamba e128, b2 then b3, step phases on; (2) the kernel seed for b3's kernels
# (tests/gpu/seed_cache.sh, its sweep cut to 240 s).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
gunzip -c gpu/s14/b2.gz > /tmp/b2 && gunzip -c gpu/s14/b3.gz > /tmp/b3 && chmod +x /tmp/b2 /tmp/b3
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
for config in gpt2-e128-l2-t82 mamba-e128-l4-t82; do
  for bin in b2 b3; do
    log "$bin $config"
    ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin ICL_LAB_STEP_PHASES=1 timeout 100 /tmp/$bin bench members --device cuda --config $config --members 1,16 --steps 300 > "$OUT/members_${bin}_$config.txt" 2>&1; log "rc $?"
    grep -E "phases|^ +(1|16) " "$OUT/members_${bin}_$config.txt" | tee -a "$OUT/log.txt"
  done
done
mkdir -p /tmp/sd && cp gpu/s14/b3.gz /tmp/sd/icl-lab.gz
DIR=/tmp/sd SWEEP_S=240 bash tests/gpu/seed_cache.sh
grep "==" "$OUT/seed_log.txt"; ls -la "$OUT"
log done
