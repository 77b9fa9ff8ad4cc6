#!/usr/bin/env bash
# Session 13, call 3: a fresh machine with the binary that ships the kernel seed
# (src/runtime/kernel_cache.rs SEEDS), nothing set: the default cache under a new HOME, and
# the driver's JIT cache under it too. The first CUDA process installs the seed.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
gunzip -c gpu/s13/icl-lab.gz > /tmp/icl && chmod +x /tmp/icl
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} HOME=/tmp/home
unset ICL_LAB_KERNEL_CACHE CUDA_CACHE_PATH
mkdir -p $HOME
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
cat > /tmp/probe.toml <<'T'
name = "shape-probe"
seed = 0
[task]
kind = "linear_regression"
n_dims = 5
[model]
arch = "mamba"
n_embd = 128
n_layer = 4
[train]
steps = 10
batch_size = 64
lr = 1e-4
eval_every = 1000000
eval_prompts = 64
log_every = 5
[train.curriculum]
dims = { start = 5, end = 5 }
points = { start = 11, end = 11 }
T
s=$(date +%s.%N); timeout 100 /tmp/icl run /tmp/probe.toml --device cuda --no-store --json > /tmp/probe.json 2>> "$OUT/log.txt"; e=$(date +%s.%N)
echo "first process: mamba d=5, 11 points: process_s=$(awk "BEGIN{print $e - $s}") $(grep -o '"first_step_s": *[0-9.e-]*' /tmp/probe.json)" | tee -a "$OUT/log.txt"
timeout 200 /tmp/icl bench models --steps 50 --json | tee -a "$OUT/log.txt"
find $HOME/.cache -type f | xargs ls -la | tee -a "$OUT/log.txt"
