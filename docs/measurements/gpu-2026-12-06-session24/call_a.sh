#!/usr/bin/env bash
# Session 24, call A: the seed for branch time-split with the prefetch choice
# (ICL_LAB_SCAN_PREFETCH; $DIR/icl-lab.gz) and its check, the scan by prefetch, then the
# same-call A/B against main's build ($MAIN/icl-lab.gz) that session 23 could not run (its
# 0.867 ms at 64x280x512 against session 22's 0.687 on another H100), then Nsight Compute's
# stall reasons for the per-channel kernels in the seconds left of $BUDGET.
set -u
START=$(date +%s); BUDGET=${BUDGET:-480}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s24c}; MAIN=${MAIN:-gpu/main}
B=/tmp/icl; gunzip -c $DIR/icl-lab.gz > $B && chmod +x $B
M=/tmp/icl-main; gunzip -c $MAIN/icl-lab.gz > $M && chmod +x $M
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
left() { echo $((BUDGET - ($(date +%s) - START))); }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
SWEEP_S=${SWEEP_S:-45} DIR=$DIR bash tests/gpu/seed_cache.sh > /dev/null 2>&1; log "seed rc $?"
ICL_LAB_KERNEL_CACHE=/tmp/kc timeout 60 $B bench scan --check --shape 64,1024,512,16 --against none --reps 10 > "$OUT/check.txt" 2>&1; log "check rc $?"
grep -E "check:|kernels |forward only|segments" "$OUT/check.txt" | tee -a "$OUT/log.txt"
ICL_LAB_SCAN_PREFETCH=l1:16 ICL_LAB_SCAN_SEGMENTS=2 ICL_LAB_KERNEL_CACHE=/tmp/kc timeout 60 $B bench scan --check --shape 64,280,512,16 --against none --reps 5 > "$OUT/check_prefetch.txt" 2>&1; log "check l1:16, 2 segments rc $?"
grep -E "check:" "$OUT/check_prefetch.txt" | tee -a "$OUT/log.txt"
scan() { # binary, shape, then env assignments
  local bin=$1 shape=$2; shift 2
  env ICL_LAB_KERNEL_CACHE=/tmp/kc-$(basename $bin) "$@" timeout 40 $bin bench scan --shape $shape --against none --reps 10 > /tmp/scan.txt 2>&1
  log "scan $(basename $bin) $shape $* rc $?: $(grep -E 'kernels |forward only|segments' /tmp/scan.txt | tr -s ' ' | tr '\n' ';')"
}
for p in none l1:4 l1:16 l2:16; do scan $B 64,1024,512,16 ICL_LAB_SCAN_PREFETCH=$p; done
for s in 64,280,512,16 64,1024,512,16; do scan $M $s; scan $B $s ICL_LAB_SCAN_PREFETCH=none; done
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
log "ncu: ${NCU:-none}, $(left) s left"
if [ -n "$NCU" ]; then
ICL_LAB_KERNEL_CACHE=/tmp/kc-icl ICL_LAB_SCAN_PREFETCH=none timeout ${NCU_S:-150} $NCU --kernel-name regex:icl_scan --launch-skip 2 --launch-count 2 \
  --section SpeedOfLight --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis \
  --section Occupancy --section LaunchStats --csv --page details \
  $B bench scan --shape 64,1024,512,16 --against none --reps 2 > "$OUT/ncu.csv" 2> "$OUT/ncu_err.txt"
log "ncu rc $?"
fi
[ $(left) -gt 90 ] || exit 0
for p in l1:8 l1:32 l2:32; do scan $B 64,1024,512,16 ICL_LAB_SCAN_PREFETCH=$p; done
for p in none l1:16 l2:16; do scan $B 64,82,256,16 ICL_LAB_SCAN_PREFETCH=$p; done
scan $M 64,82,256,16
for s in 64,280,512,16 64,1024,512,16; do scan $M $s; scan $B $s ICL_LAB_SCAN_PREFETCH=none; done
log done
