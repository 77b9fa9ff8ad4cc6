#!/usr/bin/env bash
# Session 18, call 3 (the device time left: one call). Binaries: compact-upload = main before
# this call's kernels (c758f18 + interleaved samples built on the device; main's later commits
# change only bench code); groups = branch launch-groups (the optimiser's kernels take 16
# parameters a launch, LayerNorm's ∂γ and ∂β one column sum). (1) groups' checks of what it
# changes (bench adam --check, bench layer-norm --check): nothing more runs if either fails;
# (2) `bench members` 1 and 16 for GPT-2 e128 and Mamba e128, compact-upload then groups
# (tests/gpu/members_ab.sh, no phase timing); (3) groups' kernel seed (tests/gpu/seed_cache.sh,
# sweep cut at $SWEEP_S s; its `bench models --steps 20` gives groups' matrix).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
gunzip -c gpu/s18/groups.gz > /tmp/ab-groups && chmod +x /tmp/ab-groups
ok=1
for check in adam layer-norm; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-ab-groups timeout 90 /tmp/ab-groups bench $check --check --reps 3 > "$OUT/check_$check.txt" 2>&1; rc=$?
  log "check $check rc $rc"; grep -E "^check|optimiser step|median" "$OUT/check_$check.txt" | tee -a "$OUT/log.txt"
  grep -q "^check: all within" "$OUT/check_$check.txt" || ok=0
done
[ $ok = 1 ] || { log "a check failed: stop"; exit 1; }
DIR=gpu/s18 CHECKS="" PHASES=0 BINS="compact-upload groups" bash tests/gpu/members_ab.sh
mkdir -p /tmp/sd && cp gpu/s18/groups.gz /tmp/sd/icl-lab.gz
DIR=/tmp/sd SWEEP_S=${SWEEP_S:-100} bash tests/gpu/seed_cache.sh
grep "==" "$OUT/seed_log.txt"; grep -E "runs:|failed" "$OUT/seed_log.txt" | tail -3
grep -E "^(config|gpt2|mamba)" "$OUT/seed_log.txt"
log done
