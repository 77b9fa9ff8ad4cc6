#!/usr/bin/env bash
# Session 15, call 2. new = main at the prefetch-thread commit (adam-members + upload-ahead
# merged, one prefetch thread for the loop); old = call 1's main (d966383). (1) the kernel
# seed for new's kernels (tests/gpu/seed_cache.sh, sweep cut to 240 s); (2) new's adam check;
# (3) `bench members` 1 and 16 for GPT-2 e128 and Mamba e128, old then new, no phase timing.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
mkdir -p /tmp/sd && cp gpu/s15c/new.gz /tmp/sd/icl-lab.gz
DIR=/tmp/sd SWEEP_S=240 bash tests/gpu/seed_cache.sh
grep "==" "$OUT/seed_log.txt"
gunzip -c gpu/s15c/old.gz > /tmp/old && chmod +x /tmp/old && cp /tmp/icl-seed /tmp/new
ICL_LAB_KERNEL_CACHE=/tmp/seed-kc timeout 60 /tmp/new bench adam --check --reps 3 > "$OUT/adam_check.txt" 2>&1; log "adam check rc $?"
grep "^check" "$OUT/adam_check.txt" | tee -a "$OUT/log.txt"
cp -r /tmp/seed-kc /tmp/kc-new  # new runs with its own seed, as old does with its shipped one
for config in gpt2-e128-l2-t82 mamba-e128-l4-t82; do
  for bin in old new; do
    log "$bin $config"
    ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin timeout 100 /tmp/$bin bench members --device cuda --config $config --members 1,16 --steps 300 > "$OUT/members_${bin}_$config.txt" 2>&1; log "rc $?"
    grep -E "^ +(1|16) " "$OUT/members_${bin}_$config.txt" | tee -a "$OUT/log.txt"
  done
done
log done
