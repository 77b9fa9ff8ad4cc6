#!/usr/bin/env bash
# Session 24, call B: the build that lands ($DIR/icl-lab.gz, seed 17d2fb92facd1f3c) against
# main's ($MAIN/icl-lab.gz, seed 5063318a50547a84) in one call: `bench models` from a fresh
# kernel cache each (start to first step with the shipped seed), 16 Mamba e128 members and a
# lone run, then the scan at the models' shapes with the default prefetch (l1:16) and none,
# and split in 3 and 6 at issue 7's.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s24d}; MAIN=${MAIN:-gpu/main}
B=/tmp/icl; gunzip -c $DIR/icl-lab.gz > $B && chmod +x $B
M=/tmp/icl-main; gunzip -c $MAIN/icl-lab.gz > $M && chmod +x $M
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
for bin in $B $M; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-$(basename $bin) timeout 120 $bin bench models --steps 20 > "$OUT/models_$(basename $bin).txt" 2>&1
  log "models $(basename $bin) rc $?"; cat "$OUT/models_$(basename $bin).txt" >> "$OUT/log.txt"
done
for bin in $B $M; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-$(basename $bin) timeout 80 $bin bench members --device cuda --config mamba-e128-l4-t82 --members 1,16 --steps 200 > /tmp/mb.txt 2>&1
  log "members $(basename $bin) rc $?"; grep -E "^ +(1|16) " /tmp/mb.txt | tee -a "$OUT/log.txt"
done
scan() { # binary, shape, then env assignments
  local bin=$1 shape=$2; shift 2
  env ICL_LAB_KERNEL_CACHE=/tmp/kc-$(basename $bin) "$@" timeout 40 $bin bench scan --shape $shape --against none --reps 10 > /tmp/scan.txt 2>&1
  log "scan $(basename $bin) $shape $* rc $?: $(grep -E 'kernels |forward only|segments' /tmp/scan.txt | tr -s ' ' | tr '\n' ';')"
}
for s in 64,280,512,16 64,82,256,16 1024,82,256,16 64,1024,512,16; do
  scan $M $s; scan $B $s; scan $B $s ICL_LAB_SCAN_PREFETCH=none
done
# Splits of whole waves at issue 7's shape: 3 segments fill 2 waves of the backward's 3 cubes
# an SM (768 cubes on 132 SMs), where 2 and 4 (session 23) left a wave part-empty.
for k in 3 6; do scan $B 64,1024,512,16 ICL_LAB_SCAN_SEGMENTS=$k; done
log done
