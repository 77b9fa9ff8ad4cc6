#!/usr/bin/env bash
# Session 25, call A: the scan with a channel's state split over threads
# (ICL_LAB_SCAN_ENTRIES state entries a thread; $DIR/icl-lab.gz) against main's build
# ($MAIN/icl-lab.gz) in one call: `bench scan --check` at 4, 8 and 16 entries, the kernels'
# time by entries and prefetch at issue 7's shape and the models' shapes, Nsight Compute's
# view of the split kernels, then `bench models` in the seconds left of $BUDGET.
set -u
START=$(date +%s); BUDGET=${BUDGET:-540}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s25a}; MAIN=${MAIN:-gpu/main}
B=/tmp/icl; gunzip -c $DIR/icl-lab.gz > $B && chmod +x $B
M=/tmp/icl-main; gunzip -c $MAIN/icl-lab.gz > $M && chmod +x $M
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
left() { echo $((BUDGET - ($(date +%s) - START))); }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
for s in 4 8 16; do
  ICL_LAB_SCAN_ENTRIES=$s ICL_LAB_KERNEL_CACHE=/tmp/kc timeout 90 $B bench scan --check --against none --reps 5 > "$OUT/check_s$s.txt" 2>&1
  log "check entries $s rc $?"; grep -E "check|kernels " "$OUT/check_s$s.txt" | tee -a "$OUT/log.txt"
done
scan() { # binary, shape, then env assignments
  local bin=$1 shape=$2; shift 2
  env ICL_LAB_KERNEL_CACHE=/tmp/kc-$(basename $bin) "$@" timeout 40 $bin bench scan --shape $shape --against none --reps 10 > /tmp/scan.txt 2>&1
  log "scan $(basename $bin) $shape $* rc $?: $(grep -E 'kernels |forward only|segments' /tmp/scan.txt | tr -s ' ' | tr '\n' ';')"
}
I=64,1024,512,16
scan $M $I
for s in 4 8 16; do for p in l1:16 none; do scan $B $I ICL_LAB_SCAN_ENTRIES=$s ICL_LAB_SCAN_PREFETCH=$p; done; done
scan $M $I
for sh in 64,280,512,16 64,82,256,16 1024,82,256,16; do
  scan $M $sh; for s in 4 8 16; do scan $B $sh ICL_LAB_SCAN_ENTRIES=$s; done
done
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
for s in 4 8; do
  [ $(left) -gt 150 ] || break
  ICL_LAB_KERNEL_CACHE=/tmp/kc-icl ICL_LAB_SCAN_ENTRIES=$s timeout 60 $NCU --kernel-name regex:icl_scan --launch-skip 2 --launch-count 2 \
    --section SpeedOfLight --section WarpStateStats --section SchedulerStats --section Occupancy --section LaunchStats --csv --page details \
    $B bench scan --shape $I --against none --reps 2 > "$OUT/ncu_s$s.csv" 2> "$OUT/ncu_err_s$s.txt"
  log "ncu entries $s rc $?"
done
[ $(left) -gt 100 ] || exit 0
ICL_LAB_KERNEL_CACHE=/tmp/kc-icl timeout $(( $(left) - 20 )) $B bench models --steps 20 > "$OUT/models.txt" 2>&1
log "models rc $?"; cat "$OUT/models.txt" >> "$OUT/log.txt"
log done
