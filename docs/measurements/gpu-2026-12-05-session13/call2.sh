#!/usr/bin/env bash
# Session 13, call 2: the kernel-cache seed for the merged main (scan-members in), then the
# whole matrix as a fresh machine with that seed would start: a new cache directory holding
# only the seed's chunk (where install_seed puts it) and an empty driver JIT cache.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
DIR=gpu/s13 bash tests/gpu/seed_cache.sh
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/seed_log.txt"
key=$(ls /tmp/seed-kc | head -1)
mkdir -p /tmp/kc-seeded/$key/cuda/0.10.0/ptx && cp /tmp/seed-kc/$key/cuda/0.10.0/ptx/chunk0.cbor /tmp/kc-seeded/$key/cuda/0.10.0/ptx/
echo "== $(date +%T) seeded matrix" | tee -a "$OUT/seed_log.txt"
ICL_LAB_KERNEL_CACHE=/tmp/kc-seeded CUDA_CACHE_PATH=/tmp/nv-seeded timeout 200 /tmp/icl-seed bench models --steps 100 --json | tee "$OUT/seeded_matrix.txt"
echo "== $(date +%T) done" | tee -a "$OUT/seed_log.txt"
