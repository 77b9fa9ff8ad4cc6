#!/usr/bin/env bash
# Session 23, call C: the build that ships ($DIR/icl-lab.gz: per channel wherever our CUDA C++
# runs it, not split over time by default). The check, the kernels alone at issue 7's shape
# and a lone Mamba e128's (16 Mamba e128 members against one run with MEMBERS=1), then the seed
# for this build.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s23c}
B=/tmp/icl; gunzip -c $DIR/icl-lab.gz > $B && chmod +x $B
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} ICL_LAB_KERNEL_CACHE=/tmp/kc
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
timeout 90 $B bench scan --check --shape 64,1024,512,16 --against none --reps 10 > "$OUT/check.txt" 2>&1; log "check rc $?"
grep -E "check:|kernels |forward only|segments" "$OUT/check.txt" | tee -a "$OUT/log.txt"
timeout 40 $B bench scan --shape 64,82,256,16 --against none --reps 10 > /tmp/scan.txt 2>&1
log "scan 64,82,256,16 rc $?: $(grep -E 'kernels |forward only|segments' /tmp/scan.txt | tr -s ' ' | tr '\n' ';')"
[ -n "${MEMBERS:-}" ] && { timeout 70 $B bench members --device cuda --config mamba-e128-l4-t82 --members 1,16 --steps 200 > /tmp/mb.txt 2>&1
log "members rc $?"; grep -E "^ +(1|16) " /tmp/mb.txt | tee -a "$OUT/log.txt"; }
SWEEP_S=${SWEEP_S:-90} DIR=$DIR bash tests/gpu/seed_cache.sh > /dev/null 2>&1; log "seed rc $?"
log done
