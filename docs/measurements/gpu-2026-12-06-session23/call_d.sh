#!/usr/bin/env bash
# Session 23, call D (the session's last device minutes): the build that ships ($DIR), its
# check, then its seed with a short sweep.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s23c}
B=/tmp/icl; gunzip -c $DIR/icl-lab.gz > $B && chmod +x $B
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} ICL_LAB_KERNEL_CACHE=/tmp/kc
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
SWEEP_S=${SWEEP_S:-40} DIR=$DIR bash tests/gpu/seed_cache.sh > /dev/null 2>&1; log "seed rc $?"
timeout 45 $B bench scan --check --shape 64,1024,512,16 --against none --reps 10 > "$OUT/check.txt" 2>&1; log "check rc $?"
grep -E "check:|kernels |forward only|segments" "$OUT/check.txt" | tee -a "$OUT/log.txt"
log done
