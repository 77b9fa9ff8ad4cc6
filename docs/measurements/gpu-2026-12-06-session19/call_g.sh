#!/usr/bin/env bash
# Session 19, call G: the merged attention kernels at 1, 2 and 4 threads a row
# (ICL_LAB_ATTENTION_LANES), kernels alone (bench attention, two rounds) and in GPT-2 e256 steps.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} ICL_LAB_KERNEL_CACHE=/tmp/kc-g
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/log.txt"
gunzip -c gpu/s19c/ilp.gz > /tmp/b && chmod +x /tmp/b
for round in 1 2; do for lanes in 2 4 1; do for shape in 64,280,256,8 1024,82,128,8; do
  echo "== round $round lanes $lanes $shape" >> "$OUT/log.txt"
  ICL_LAB_ATTENTION_LANES=$lanes timeout 60 /tmp/b bench attention --reps 20 --shape $shape 2>&1 | grep fused | head -1 >> "$OUT/log.txt"
done; done; done
for lanes in 2 4 2 4; do
  echo "== models lanes $lanes" >> "$OUT/log.txt"
  ICL_LAB_ATTENTION_LANES=$lanes ICL_LAB_HOME=/tmp/st timeout 90 /tmp/b bench models --only gpt2-e256-l12-t280,gpt2-e128-l2-t82 --steps 100 2>&1 | grep -E "^gpt2" >> "$OUT/log.txt"
done
cat "$OUT/log.txt"
