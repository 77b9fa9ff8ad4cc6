#!/usr/bin/env bash
# Session 17, call 3 (cut to fit the device time left after failed starts). final = main with
# session16 merged (fused conv, lean per-channel scan, `bench conv`) and the scan layout picked
# by size (per channel from 32,768 batch x channel pairs); main = 106a245. (1) final's kernel
# seed (tests/gpu/seed_cache.sh, sweep cut at 240 s: every run must finish; its `bench models
# --steps 20` gives final's matrix); (2) `bench members` 1 and 16 for GPT-2 e128 and Mamba
# e128, main then final (with its own seed); SEED_ONLY=1 skips it. The kernels are session16's,
# checked in calls 1-2.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
mkdir -p /tmp/sd && cp gpu/s17/final.gz /tmp/sd/icl-lab.gz
DIR=/tmp/sd SWEEP_S=${SWEEP_S:-240} bash tests/gpu/seed_cache.sh
grep "==" "$OUT/seed_log.txt"; grep -E "runs:|failed" "$OUT/seed_log.txt" | tail -5
grep -E "^(config|gpt2|mamba)" "$OUT/seed_log.txt"
cp /tmp/icl-seed /tmp/ab-final && mkdir -p /tmp/kc-ab-final && cp -r /tmp/seed-kc/. /tmp/kc-ab-final/
[ "${SEED_ONLY:-0}" = 1 ] || DIR=gpu/s17 CHECKS="" PHASES=0 BINS="main final" bash tests/gpu/members_ab.sh
log done
