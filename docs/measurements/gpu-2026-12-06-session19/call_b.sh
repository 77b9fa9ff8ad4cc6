#!/usr/bin/env bash
# Session 19, command B (same machine, right after A): GPT-2 e256 and Mamba e128 in fresh
# processes, main then the candidate, twice; then the candidate's kernel seed.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s19}; CAND=${CAND:-ilp}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
for n in base $CAND; do [ -x /tmp/ab-$n ] || { gunzip -c $DIR/$n.gz > /tmp/ab-$n && chmod +x /tmp/ab-$n; }; done
for n in base $CAND base $CAND; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-ab-$n ICL_LAB_HOME=/tmp/store-$n timeout 150 /tmp/ab-$n bench models --only gpt2-e256-l12-t280,gpt2-e128-l2-t82,mamba-e128-l4-t82 --steps 100 >> "$OUT/models_$n.txt" 2>&1
  log "models $n rc $?"; grep -E "^(gpt2|mamba)" "$OUT/models_$n.txt" | tail -3 | tee -a "$OUT/log.txt"
done
mkdir -p /tmp/sd && cp $DIR/$CAND.gz /tmp/sd/icl-lab.gz
DIR=/tmp/sd SWEEP_S=${SWEEP_S:-150} bash tests/gpu/seed_cache.sh
grep "==" "$OUT/seed_log.txt"; grep -E "^(config|gpt2|mamba)" "$OUT/seed_log.txt"
log done
