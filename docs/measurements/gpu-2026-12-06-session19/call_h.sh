#!/usr/bin/env bash
# Session 19, call H: branch attention-rows (two query rows a thread, keys in runs of 16; key
# side as before session 19) against the merged binary: its check, then the kernels' time at
# GPT-2 e256's and e128's shapes, two rounds, then GPT-2 e256 steps.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/log.txt"
for n in ilp rows; do gunzip -c gpu/s19d/$n.gz > /tmp/$n && chmod +x /tmp/$n; done
ICL_LAB_KERNEL_CACHE=/tmp/kc-rows timeout 60 /tmp/rows bench attention --check --reps 3 > "$OUT/check_rows.txt" 2>&1
grep -E "^check" "$OUT/check_rows.txt" | tee -a "$OUT/log.txt"
for round in 1 2; do for n in ilp rows; do for shape in 64,280,256,8 1024,82,128,8; do
  echo "== $n $shape" >> "$OUT/log.txt"
  ICL_LAB_KERNEL_CACHE=/tmp/kc-$n timeout 40 /tmp/$n bench attention --reps 20 --shape $shape 2>&1 | grep fused | head -1 >> "$OUT/log.txt"
done; done; done
for n in ilp rows ilp rows; do
  echo "== models $n" >> "$OUT/log.txt"
  ICL_LAB_KERNEL_CACHE=/tmp/kc-$n ICL_LAB_HOME=/tmp/st-$n timeout 60 /tmp/$n bench models --only gpt2-e256-l12-t280 --steps 100 2>&1 | grep -E "^gpt2" >> "$OUT/log.txt"
done
cat "$OUT/log.txt"
