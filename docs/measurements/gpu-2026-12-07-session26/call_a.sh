#!/usr/bin/env bash
# Session 26, call A: session 25's call C (the seed for split-state's kernels, fingerprint
# d146faa7c2ec1844, its check, the default entries against main), then the forward-8/
# backward-16 pairing the GPU had not run, the model shapes, and `bench models` of both
# binaries on the same card. Binaries: $DIR/icl-lab.gz (split-state), $MAIN/icl-lab.gz (main).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s25c}; MAIN=${MAIN:-gpu/main}
SWEEP_S=${SWEEP_S:-120} OUT=$OUT DIR=$DIR MAIN=$MAIN \
  bash docs/measurements/gpu-2026-12-07-session25/call_c.sh
B=/tmp/icl; M=/tmp/icl-main  # unpacked by call_c.sh
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
scan() { # binary, shape, entries ("" for the default)
  env ${3:+ICL_LAB_SCAN_ENTRIES=$3} ICL_LAB_KERNEL_CACHE=/tmp/kc-$(basename $1) timeout 40 \
    $1 bench scan --shape $2 --against none --reps 10 > /tmp/scan.txt 2>&1
  log "scan $(basename $1) $2 entries '$3' rc $?: $(grep -E 'kernels |forward only' /tmp/scan.txt | tr -s ' ' | tr '\n' ';')"
}
unset ICL_LAB_SCAN_ENTRIES
for sh in 64,280,512,16 64,1024,512,16; do scan $B $sh 8,16; scan $B $sh 8,8; done
for sh in 64,82,256,16 1024,82,256,16; do scan $M $sh ""; scan $B $sh ""; scan $B $sh 8,16; done
for sh in 64,1024,512,16 64,280,512,16; do scan $M $sh ""; scan $B $sh ""; done
ICL_LAB_KERNEL_CACHE=/tmp/kc-icl-main timeout 150 $M bench models --steps 20 > "$OUT/models_main.txt" 2>&1
log "models main rc $?"
ICL_LAB_KERNEL_CACHE=/tmp/seed-kc timeout 150 $B bench models --steps 20 > "$OUT/models_branch.txt" 2>&1
log "models branch rc $?"
log done
