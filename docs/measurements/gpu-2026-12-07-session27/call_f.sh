#!/usr/bin/env bash
# Session 27, call F: the kernel seed for the commit to ship ($DIR: activations as one step,
# the one-output read-out on our matmul for stacked members; plain models' read-in and
# read-out back on burn's Linear after call E), its sweep cut at 120 s; then Mamba e256 three
# times against main ($MAIN, fresh cache with its seed) and the newest (the cache just seeded),
# alternating, and `bench models` once more on each.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; MAIN=${MAIN:-gpu/s26b}; DIR=${DIR:-gpu/s27c}
DIR=$DIR SWEEP_S=${SWEEP_S:-120} bash tests/gpu/seed_cache.sh
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
gunzip -c $MAIN/icl-lab.gz > /tmp/main && gunzip -c $DIR/icl-lab.gz > /tmp/new && chmod +x /tmp/main /tmp/new
cp -r /tmp/seed-kc /tmp/kc-new
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
for i in 1 2 3; do for bin in main new; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin timeout 60 /tmp/$bin bench models --steps 40 --only mamba-e256-l24-t280 > /tmp/m.txt 2>&1
  log "mamba e256 $bin rc $?"; grep mamba /tmp/m.txt >> "$OUT/log.txt"
done; done
for bin in main new; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin timeout 120 /tmp/$bin bench models --steps 40 > /tmp/m.txt 2>&1
  log "models $bin rc $?"; cat /tmp/m.txt >> "$OUT/log.txt"
done
log done
