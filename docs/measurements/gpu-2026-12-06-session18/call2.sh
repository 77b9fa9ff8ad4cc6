#!/usr/bin/env bash
# Session 18, call 2: where the GPU time goes now, binary compact-upload (main c758f18 +
# interleaved samples built on the device). No nsys on these machines: Nsight Compute with
# only the duration metric (tests/gpu/ncu_summary.py), skipping the first steps' launches.
# GPT-2 e256 L12 alone (slower than PyTorch with TF32 in call 1), GPT-2 e128 and Mamba e128 at
# 16 members (the 8x target). Then `bench matmul` (every cubek strategy on a block's linears) at
# GPT-2 e256's shape and at 16 x 64 rows of GPT-2 e128.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} ICL_LAB_KERNEL_CACHE=/tmp/kc-cu
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
gunzip -c gpu/s18/compact-upload.gz > /tmp/b && chmod +x /tmp/b
NCU=/usr/local/cuda/bin/ncu
prof() {  # name, skip, count, per-step kernel, its launches a step, then the icl-lab arguments
  local name=$1 skip=$2 count=$3 marker=$4 per=$5; shift 5
  log "ncu $name"
  timeout 200 $NCU --clock-control none --metrics gpu__time_duration.sum --launch-skip $skip \
    --launch-count $count --csv /tmp/b "$@" > "$OUT/ncu_$name.csv" 2> "$OUT/ncu_$name.err"; log "rc $?"
  python3 tests/gpu/ncu_summary.py "$OUT/ncu_$name.csv" --per-step-kernel $marker --per-step $per --top 30 > "$OUT/summary_$name.txt" 2>&1
  head -16 "$OUT/summary_$name.txt"
}
prof gpt2_e256 4000 2100 attention_forward 12 bench models --device cuda:0 --only gpt2-e256-l12-t280 --steps 16 --timeout 190
prof gpt2_16 3000 700 attention_forward 2 bench members --device cuda --config gpt2-e128-l2-t82 --members 16 --steps 40
prof mamba_16 6000 1500 causal_conv_forward 4 bench members --device cuda --config mamba-e128-l4-t82 --members 16 --steps 40
for shape in 64,280,256 1024,82,128; do
  log "matmul strategies at $shape"
  timeout 100 /tmp/b bench matmul --shape $shape --reps 10 > "$OUT/matmul_${shape//,/x}.txt" 2>&1; log "rc $?"
  tail -25 "$OUT/matmul_${shape//,/x}.txt"
done
log done
