#!/usr/bin/env bash
# Session 25, call C, NOT RUN: failed starts spent the session's device time first. Run it
# with the release build of branch split-state (or main with split-state.patch applied) as
# $DIR/icl-lab.gz and main's as $MAIN/icl-lab.gz: the seed for fingerprint d146faa7c2ec1844
# (copy $OUT/<key>.cbor.gz to kernels/seed/, name it in SEEDS), its check, and the default
# (the forward split in 8 entries a thread, the backward unsplit) against main at issue 7's
# shape and the 280-token shape.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s25c}; MAIN=${MAIN:-gpu/main}
B=/tmp/icl; gunzip -c $DIR/icl-lab.gz > $B && chmod +x $B
M=/tmp/icl-main; gunzip -c $MAIN/icl-lab.gz > $M && chmod +x $M
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
SWEEP_S=${SWEEP_S:-30} DIR=$DIR bash tests/gpu/seed_cache.sh > /dev/null 2>&1; log "seed rc $?"
grep -E "^(gpt2|mamba)" "$OUT/seed_log.txt" | tee -a "$OUT/log.txt"
ICL_LAB_KERNEL_CACHE=/tmp/kc timeout 60 $B bench scan --check --against none --reps 5 > "$OUT/check.txt" 2>&1
log "check rc $?"; grep -E "check|kernels |forward only" "$OUT/check.txt" | tee -a "$OUT/log.txt"
scan() { # binary, shape
  ICL_LAB_KERNEL_CACHE=/tmp/kc-$(basename $1) timeout 40 $1 bench scan --shape $2 --against none --reps 10 > /tmp/scan.txt 2>&1
  log "scan $(basename $1) $2 rc $?: $(grep -E 'kernels |forward only' /tmp/scan.txt | tr -s ' ' | tr '\n' ';')"
}
for sh in 64,280,512,16 64,1024,512,16; do scan $M $sh; scan $B $sh; done
log done
