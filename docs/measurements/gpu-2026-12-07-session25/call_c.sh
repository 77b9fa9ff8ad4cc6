#!/usr/bin/env bash
# Session 25, call C: the seed for the build that lands ($DIR/icl-lab.gz: forward split in 8
# entries a thread, backward unsplit) and its check, then it against main's build
# ($MAIN/icl-lab.gz) at issue 7's shape and the models' shapes, `bench models` (start-up
# with the seed, step times), and 16 Mamba members.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s25c}; MAIN=${MAIN:-gpu/main}
B=/tmp/icl; gunzip -c $DIR/icl-lab.gz > $B && chmod +x $B
M=/tmp/icl-main; gunzip -c $MAIN/icl-lab.gz > $M && chmod +x $M
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
SWEEP_S=${SWEEP_S:-45} DIR=$DIR bash tests/gpu/seed_cache.sh > /dev/null 2>&1; log "seed rc $?"
ICL_LAB_KERNEL_CACHE=/tmp/kc timeout 90 $B bench scan --check --against none --reps 5 > "$OUT/check.txt" 2>&1
log "check rc $?"; grep -E "check|kernels " "$OUT/check.txt" | tee -a "$OUT/log.txt"
scan() { # binary, shape, then env assignments
  local bin=$1 shape=$2; shift 2
  env ICL_LAB_KERNEL_CACHE=/tmp/kc-$(basename $bin) "$@" timeout 40 $bin bench scan --shape $shape --against none --reps 10 > /tmp/scan.txt 2>&1
  log "scan $(basename $bin) $shape $* rc $?: $(grep -E 'kernels |forward only' /tmp/scan.txt | tr -s ' ' | tr '\n' ';')"
}
for round in 1 2; do
  for sh in 64,1024,512,16 64,280,512,16 64,82,256,16 1024,82,256,16; do scan $M $sh; scan $B $sh; done
done
for bin in $B $M; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-m-$(basename $bin) timeout 120 $bin bench models --steps 20 > "$OUT/models_$(basename $bin).txt" 2>&1
  log "models $(basename $bin) rc $?"; cat "$OUT/models_$(basename $bin).txt" >> "$OUT/log.txt"
done
for bin in $B $M; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-m-$(basename $bin) timeout 80 $bin bench members --device cuda --config mamba-e128-l4-t82 --members 1,16 --steps 200 > /tmp/mb.txt 2>&1
  log "members $(basename $bin) rc $?"; grep -E "^ +(1|16) " /tmp/mb.txt | tee -a "$OUT/log.txt"
done
log done
