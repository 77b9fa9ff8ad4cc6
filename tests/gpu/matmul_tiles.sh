#!/usr/bin/env bash
# `bench matmul` over tilings of our own (icl_lab_kernels::matmul::Tiles) beside the linear
# layers' current ones, at GPT-2 e256's and 16 GPT-2 e128 members' shapes, with cuBLAS (PyTorch,
# TF32) on the same matmuls for scale. One GPU call, ~5 minutes. Carry a stripped, gzipped
# release binary (--features cuda) as $DIR/icl-lab.gz.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s21}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} ICL_LAB_KERNEL_CACHE=/tmp/kc-tiles
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
gunzip -c $DIR/icl-lab.gz > /tmp/tiles && chmod +x /tmp/tiles
NOW="tile-tma-m4x2-n4-k4-s,simple-rows-mma"
T=${TILES:-tile-dtma-m4x2-n4-k4-s,tile-dtma-m4x1-n4-k4-s,tile-dtma-m4x2-n8-k4-s,tile-stma-m4x2-n4-k4-s,tile-dcyc-m4x2-n4-k4-s,tile-tma-m4x2-n4-k4-s-mma,tile-dtma-m4x2-n4-k4-s-mma,tile-dtma-m4x2-n4-k2-s,tile-dtma-m8x1-n4-k4-s}
timeout 200 /tmp/tiles bench matmul --check --reps 3 --shape 8,40,64 --strategies "$NOW,$T" > "$OUT/check.txt" 2>&1; echo "check rc $?" | tee -a "$OUT/log.txt"
grep -B1 -A20 "^relative error" "$OUT/check.txt" | head -24 | tee -a "$OUT/log.txt"
for shape in 64,280,256 1024,82,128; do
  timeout 150 /tmp/tiles bench matmul --reps 20 --shape $shape --strategies "$NOW,$T" > /tmp/mm.txt 2>&1; echo "time $shape rc $?" | tee -a "$OUT/log.txt"
  grep -A20 "one GPT-2 block" /tmp/mm.txt | tee -a "$OUT/log.txt"
  python3 tests/gpu/torch_matmuls.py $shape 2>&1 | tee -a "$OUT/log.txt"
done
