#!/usr/bin/env bash
# Compiles, into a fresh kernel cache, the kernels a first run meets (the `bench models` matrix;
# every shipped experiment, seed 0, compressed to 50 steps through its whole curriculum and an
# evaluation), and returns CubeCL's chunk of PTX for shipping with icl-lab
# (src/runtime/kernel_cache.rs, SEEDS). Run it on the GPU machine with the stripped, gzipped
# release binary of the commit to ship as $DIR/icl-lab.gz; a few minutes (the sweep is cut at
# $SWEEP_S seconds, 300 by default).
# Then: copy $OUT/<key>.cbor.gz to kernels/seed/ and name it in SEEDS. The key's fingerprint
# is that of the kernels' source and Cargo.lock: any change to either needs a new seed (an
# old one is then simply not used).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s13}
BIN=/tmp/icl-seed; gunzip -c $DIR/icl-lab.gz > $BIN && chmod +x $BIN
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export ICL_LAB_KERNEL_CACHE=/tmp/seed-kc ICL_LAB_HOME=/tmp/seed-store
rm -rf /tmp/seed-kc /tmp/seed-store /tmp/seed-exp && mkdir -p /tmp/seed-exp
log() { echo "== $(date +%T) $*" | tee -a "$OUT/seed_log.txt"; }
log "bench models"
timeout 150 $BIN bench models --steps 20 >> "$OUT/seed_log.txt" 2>&1
for f in experiments/paper/reduced/*.toml experiments/quick/*.toml experiments/extra/*.toml; do
  sed 's/^seeds = .*/seeds = [0]/' "$f" > "/tmp/seed-exp/$(basename $(dirname $f))-$(basename $f)"
done
log "sweep"
timeout ${SWEEP_S:-300} $BIN sweep /tmp/seed-exp/*.toml --scale 0.025 --devices cuda:0 --slots-per-device 8 >> "$OUT/seed_log.txt" 2>&1
log "sweep rc $?"
for key in $(ls /tmp/seed-kc); do
  chunk=/tmp/seed-kc/$key/cuda/0.10.0/ptx/chunk0.cbor
  ls -la "$chunk" | tee -a "$OUT/seed_log.txt"
  gzip -9 -c "$chunk" > "$OUT/$key.cbor.gz"
done
ls -la "$OUT" | tee -a "$OUT/seed_log.txt"
