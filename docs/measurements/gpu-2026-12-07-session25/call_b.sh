#!/usr/bin/env bash
# Session 25, call B: after call A, unsplit kernels walk in pairs again (with the adjoint's
# h_t from the later slot and 32-bit offsets). The build ($DIR/icl-lab.gz) at 16 and 8
# entries a thread against main's ($MAIN/icl-lab.gz), at issue 7's shape and the models'
# shapes, twice each in turn; `bench scan --check` at 16 entries; 16 Mamba members.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s25b}; MAIN=${MAIN:-gpu/main}
B=/tmp/icl; gunzip -c $DIR/icl-lab.gz > $B && chmod +x $B
M=/tmp/icl-main; gunzip -c $MAIN/icl-lab.gz > $M && chmod +x $M
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
ICL_LAB_SCAN_ENTRIES=16 ICL_LAB_KERNEL_CACHE=/tmp/kc timeout 90 $B bench scan --check --against none --reps 5 > "$OUT/check_s16.txt" 2>&1
log "check entries 16 rc $?"; grep -E "check|kernels " "$OUT/check_s16.txt" | tee -a "$OUT/log.txt"
scan() { # binary, shape, then env assignments
  local bin=$1 shape=$2; shift 2
  env ICL_LAB_KERNEL_CACHE=/tmp/kc-$(basename $bin) "$@" timeout 40 $bin bench scan --shape $shape --against none --reps 10 > /tmp/scan.txt 2>&1
  log "scan $(basename $bin) $shape $* rc $?: $(grep -E 'kernels |forward only' /tmp/scan.txt | tr -s ' ' | tr '\n' ';')"
}
for round in 1 2; do
  for sh in 64,1024,512,16 64,280,512,16 64,82,256,16 1024,82,256,16; do
    scan $M $sh; for s in 16 8; do scan $B $sh ICL_LAB_SCAN_ENTRIES=$s; done
  done
done
for s in 16 8; do
  ICL_LAB_SCAN_ENTRIES=$s ICL_LAB_KERNEL_CACHE=/tmp/kc-icl timeout 80 $B bench members --device cuda --config mamba-e128-l4-t82 --members 1,16 --steps 200 > /tmp/mb.txt 2>&1
  log "members entries $s rc $?"; grep -E "^ +(1|16) " /tmp/mb.txt | tee -a "$OUT/log.txt"
done
ICL_LAB_KERNEL_CACHE=/tmp/kc-icl-main timeout 80 $M bench members --device cuda --config mamba-e128-l4-t82 --members 1,16 --steps 200 > /tmp/mb.txt 2>&1
log "members main rc $?"; grep -E "^ +(1|16) " /tmp/mb.txt | tee -a "$OUT/log.txt"
log done
