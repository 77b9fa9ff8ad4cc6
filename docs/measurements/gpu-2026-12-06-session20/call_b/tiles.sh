#!/usr/bin/env bash
# Session 20 call B: cubek tilings of our own against the chosen strategies and cuBLAS.
# (torch_matmuls.py ran from this folder as torch_mm.py; it is tests/gpu/torch_matmuls.py now.)
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
gunzip -c gpu/s20/tiles.gz > /tmp/tiles && chmod +x /tmp/tiles
export ICL_LAB_KERNEL_CACHE=/tmp/kc-tiles
T="tile-tma-m2x1-n2-k4-s-swz,tile-tma-m4x1-n4-k4-s,tile-tma-m4x1-n4-k4-s-swz,tile-tma-m4x2-n4-k4-s,tile-tma-m4x2-n8-k4-s,tile-tma-m4x2-n8-k4-d,tile-tma-m8x1-n8-k4-s,tile-tma-m8x1-n4-k4-s,tile-tma-m4x2-n4-k2-s,tile-tma-m4x1-n8-k4-s,tile-cyc-m4x2-n4-k4-s,tile-cyc-m8x1-n8-k4-s"
C="simple-tma-cmma,specialized-tma-cmma,simple-rows-mma"
timeout 200 /tmp/tiles bench matmul --check --reps 3 --shape 8,40,64 --strategies "$C,$T" > "$OUT/check.txt" 2>&1; echo "check rc $?" | tee -a "$OUT/log.txt"
head -30 "$OUT/check.txt" | tee -a "$OUT/log.txt"
for shape in 64,280,256 1024,82,128; do
  timeout 150 /tmp/tiles bench matmul --reps 20 --shape $shape --strategies "$C,$T" > /tmp/mm.txt 2>&1; echo "time $shape rc $?" | tee -a "$OUT/log.txt"
  grep -A30 "one GPT-2 block" /tmp/mm.txt | tee -a "$OUT/log.txt"
  python3 tests/gpu/torch_matmuls.py $shape 2>&1 | tee -a "$OUT/log.txt"
done
