#!/usr/bin/env bash
# Session 23, calls A and B: the per-channel scan split over time (branch time-split,
# $DIR/icl-lab.gz). Call A ran the build gpu/s23a (the launch bug, call_a_launch_bug/); call B
# the mended build, as `DIR=gpu/s23b bash call_a.sh` (call_b/).
# The check (auto split, and none), then the kernels alone by split (ICL_LAB_SCAN_SEGMENTS)
# at issue 7's shape and the models' scan shapes, against CubeCL's code and the per-state
# layout; then 16 Mamba e128 members and a lone run, split (auto) and not (1); then the seed
# for this build (tests/gpu/seed_cache.sh).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s23a}
B=/tmp/icl; gunzip -c $DIR/icl-lab.gz > $B && chmod +x $B
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} ICL_LAB_KERNEL_CACHE=/tmp/kc
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
timeout 90 $B bench scan --check --shape 64,1024,512,16 --against none --reps 10 > "$OUT/check_auto.txt" 2>&1; log "check auto rc $?"
grep -E "check:|kernels |forward only|segments" "$OUT/check_auto.txt" | tee -a "$OUT/log.txt"
ICL_LAB_SCAN_SEGMENTS=1 timeout 60 $B bench scan --check --shape 64,82,256,16 --against none --reps 5 > "$OUT/check_one.txt" 2>&1; log "check one segment rc $?"
grep -E "check:" "$OUT/check_one.txt" | tee -a "$OUT/log.txt"
scan() { # shape, then env assignments
  local shape=$1; shift
  env "$@" timeout 40 $B bench scan --shape $shape --against none --reps 10 > /tmp/scan.txt 2>&1
  log "scan $shape $* rc $?: $(grep -E 'kernels |forward only|segments' /tmp/scan.txt | tr -s ' ' | tr '\n' ';')"
}
for s in 1 2 4 auto; do scan 64,1024,512,16 ICL_LAB_SCAN_SEGMENTS=$s; done
scan 64,1024,512,16 ICL_LAB_SCAN_CODE=cubecl
for s in 1 auto; do scan 64,82,256,16 ICL_LAB_SCAN_SEGMENTS=$s; done
scan 64,82,256,16 ICL_LAB_SCAN_KERNEL=state
for s in 1 auto; do scan 64,280,512,16 ICL_LAB_SCAN_SEGMENTS=$s; done
for s in 1 auto; do scan 1024,82,256,16 ICL_LAB_SCAN_SEGMENTS=$s; done
for v in ICL_LAB_SCAN_SEGMENTS=auto "ICL_LAB_SCAN_SEGMENTS=1 ICL_LAB_SCAN_KERNEL=state"; do
  env $v timeout 70 $B bench members --device cuda --config mamba-e128-l4-t82 --members 1,16 --steps 200 > /tmp/mb.txt 2>&1
  log "members $v rc $?"; grep -E "^ +(1|16) " /tmp/mb.txt | tee -a "$OUT/log.txt"
done
# The seed for this build (its bench models table is in seed_log.txt).
SWEEP_S=${SWEEP_S:-90} DIR=$DIR bash tests/gpu/seed_cache.sh > /dev/null 2>&1; log "seed rc $?"
log done
