#!/usr/bin/env bash
# Branch launch-groups on a GPU, in one call (written in session 18, which had no device time
# left to run it): the optimiser's kernels take 16 parameters a launch, LayerNorm's ∂γ and ∂β
# one column sum, the conv kernels a stacked model's members as they come. Carry two stripped,
# gzipped release binaries (--features cuda) in $DIR: base.gz (main) and groups.gz (the
# branch). (1) groups' checks of what it changes (bench adam, layer-norm and conv --check):
# nothing more runs if one fails; (2) `bench members` 1 and 16 for GPT-2 e128 and Mamba e128,
# base then groups (members_ab.sh: member 0's loss against its lone run must stay at rounding);
# (3) groups' kernel seed (seed_cache.sh, sweep cut at $SWEEP_S s): copy $OUT/<key>.cbor.gz to
# kernels/seed/, name it in SEEDS (src/runtime/kernel_cache.rs), delete the old one. About
# 6-7 minutes.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s19}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
gunzip -c $DIR/groups.gz > /tmp/ab-groups && chmod +x /tmp/ab-groups
ok=1
for check in adam layer-norm conv; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-ab-groups timeout 90 /tmp/ab-groups bench $check --check --reps 3 > "$OUT/check_$check.txt" 2>&1
  log "check $check rc $?"; grep -E "^check|median" "$OUT/check_$check.txt" | tee -a "$OUT/log.txt"
  grep -q "^check: all within" "$OUT/check_$check.txt" || ok=0
done
[ $ok = 1 ] || { log "a check failed: stop"; exit 1; }
DIR=$DIR CHECKS="" PHASES=0 BINS="base groups" bash tests/gpu/members_ab.sh
mkdir -p /tmp/sd && cp $DIR/groups.gz /tmp/sd/icl-lab.gz
DIR=/tmp/sd SWEEP_S=${SWEEP_S:-150} bash tests/gpu/seed_cache.sh
grep "==" "$OUT/seed_log.txt"; grep -E "^(config|gpt2|mamba)" "$OUT/seed_log.txt"
log done
