#!/usr/bin/env bash
# Session 22, call C (after call_c.sh, same machine): branch scan-prefetch's binary ($DIR/icl-lab.gz),
# whose per-channel scan asks L2 for each step's inputs ahead (`prefetch.global.L2`), against the
# seeded binary's (/tmp/icl, from call_c.sh): the scan kernels alone, 16 Mamba e128 members, and
# the Mamba configs of `bench models`.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s22p}
P=/tmp/icl-p; gunzip -c $DIR/icl-lab.gz > $P && chmod +x $P
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} ICL_LAB_KERNEL_CACHE=/tmp/kc-p
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
for shape in 64,1024,512,16 64,280,512,16 1024,82,256,16 64,82,256,16; do
  for b in /tmp/icl $P; do
    timeout 40 $b bench scan --kernel channel --shape $shape --against none --reps 10 > /tmp/scan.txt 2>&1
    log "scan $b $shape rc $?: $(grep -E 'kernels |forward only' /tmp/scan.txt | tr -s ' ' | tr '\n' ';')"
  done
done
for b in /tmp/icl $P; do
  timeout 60 $b bench members --device cuda --config mamba-e128-l4-t82 --members 1,16 --steps 200 > /tmp/mb.txt 2>&1
  log "members $b rc $?"; grep -E "^ +(1|16) " /tmp/mb.txt | tee -a "$OUT/log.txt"
  timeout 60 $b bench models --only mamba-e256-l24-t280,mamba-e128-l4-t1024 --steps 60 > /tmp/m.txt 2>&1; log "models $b rc $?"
  grep -E "^mamba" /tmp/m.txt | tee -a "$OUT/log.txt"
done
log done
