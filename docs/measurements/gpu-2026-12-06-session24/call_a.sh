#!/usr/bin/env bash
# Session 24, call A: the seed for branch time-split ($DIR/icl-lab.gz) and its check, then the
# same-call A/B against main's build ($MAIN/icl-lab.gz) that session 23 could not run (its
# 0.867 ms at 64x280x512 against session 22's 0.687 on another H100), then Nsight Compute's
# stall reasons for the per-channel forward and backward, in the minutes left.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s24a}; MAIN=${MAIN:-gpu/main}
B=/tmp/icl; gunzip -c $DIR/icl-lab.gz > $B && chmod +x $B
M=/tmp/icl-main; gunzip -c $MAIN/icl-lab.gz > $M && chmod +x $M
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
SWEEP_S=${SWEEP_S:-60} DIR=$DIR bash tests/gpu/seed_cache.sh > /dev/null 2>&1; log "seed rc $?"
grep -E "ms/step|^ *(gpt|mamba)" "$OUT/seed_log.txt" | head -12 >> "$OUT/log.txt"
ICL_LAB_KERNEL_CACHE=/tmp/kc timeout 60 $B bench scan --check --shape 64,1024,512,16 --against none --reps 10 > "$OUT/check.txt" 2>&1; log "check rc $?"
grep -E "check:|kernels |forward only|segments" "$OUT/check.txt" | tee -a "$OUT/log.txt"
scan() { # binary, cache, shape
  ICL_LAB_KERNEL_CACHE=$2 timeout 40 $1 bench scan --shape $3 --against none --reps 10 > /tmp/scan.txt 2>&1
  log "scan $(basename $1) $3 rc $?: $(grep -E 'kernels |forward only|segments' /tmp/scan.txt | tr -s ' ' | tr '\n' ';')"
}
for round in 1 2; do
  for s in 64,280,512,16 64,1024,512,16 64,82,256,16; do scan $M /tmp/kc-main $s; scan $B /tmp/kc $s; done
done
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
log "ncu: ${NCU:-none}"
[ -n "$NCU" ] || exit 0
ICL_LAB_KERNEL_CACHE=/tmp/kc timeout ${NCU_S:-150} $NCU --kernel-name regex:icl_scan --launch-skip 2 --launch-count 2 \
  --section SpeedOfLight --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis \
  --section Occupancy --section LaunchStats --section SourceCounters --csv --page details \
  $B bench scan --shape 64,1024,512,16 --against none --reps 2 > "$OUT/ncu.csv" 2> "$OUT/ncu_err.txt"
log "ncu rc $?"
log done
