#!/usr/bin/env bash
# Session 13, call 1: where a cold start goes (NVRTC vs the driver's PTX JIT), whether kernel
# ids depend on shapes, the scan-members branch's checks, members on this card.
# Binaries: gpu/s13/icl-lab.gz (main 5e7b31a), gpu/s13/branch.gz (scan-members fe96b51).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
gunzip -c gpu/s13/icl-lab.gz > /tmp/icl && gunzip -c gpu/s13/branch.gz > /tmp/branch && chmod +x /tmp/icl /tmp/branch
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
step() { local file=$1; shift; log "$*"; "$@" 2>> "$OUT/log.txt" | tee -a "$OUT/$file"; log "rc ${PIPESTATUS[0]}"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
# 1. Cold start: a: nothing cached; b: CubeCL's PTX cache kept, the driver's JIT cache empty;
#    c: both kept.
export ICL_LAB_KERNEL_CACHE=/tmp/kcA
CUDA_CACHE_PATH=/tmp/nvA step start.txt timeout 200 /tmp/icl bench models --steps 20 --json
CUDA_CACHE_PATH=/tmp/nvB step start.txt timeout 100 /tmp/icl bench models --steps 20 --json
CUDA_CACHE_PATH=/tmp/nvB step start.txt timeout 100 /tmp/icl bench models --steps 20 --json
du -sh /tmp/kcA /tmp/nvA | tee -a "$OUT/log.txt"; find /tmp/kcA -type f | xargs ls -la | tee -a "$OUT/log.txt"
tar -czf "$OUT/kc_bench.tar.gz" -C /tmp/kcA .
# 2. Other shapes with the cache the matrix filled: GPT-2 and Mamba at d = 5, 11 points.
cat > /tmp/small.toml <<'T'
name = "shape-probe"
seed = 0
[task]
kind = "linear_regression"
n_dims = 5
[model]
ARCH
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
for arch in gpt2 mamba; do
  case $arch in gpt2) m='arch = "gpt2"\nn_embd = 128\nn_layer = 2\nn_head = 8\nn_positions = 101';; mamba) m='arch = "mamba"\nn_embd = 128\nn_layer = 4';; esac
  sed "s/^ARCH$/$m/" /tmp/small.toml > /tmp/small_$arch.toml
  for kc in /tmp/kcA /tmp/kcS_$arch; do
    log "shape probe $arch cache $kc"
    s=$(date +%s.%N); ICL_LAB_KERNEL_CACHE=$kc CUDA_CACHE_PATH=/tmp/nvB timeout 100 /tmp/icl run /tmp/small_$arch.toml --device cuda --no-store --json > /tmp/probe.json 2>> "$OUT/log.txt"
    e=$(date +%s.%N); echo "probe $arch cache=$kc process_s=$(awk "BEGIN{print $e - $s}") $(grep -o '"first_step_s": *[0-9.e-]*' /tmp/probe.json)" | tee -a "$OUT/start.txt"
  done
done
# 3. The scan-members branch (its own cache: its scan kernels keep their ids but take an extra argument).
export ICL_LAB_KERNEL_CACHE=/tmp/kcBranch
step checks.txt timeout 120 /tmp/branch bench scan --check --reps 3 --against none
step members.txt timeout 150 /tmp/branch bench members --device cuda --config mamba-e128-l4-t82 --members 1,16 --steps 200 --json
export ICL_LAB_KERNEL_CACHE=/tmp/kcA
step members.txt timeout 150 /tmp/icl bench members --device cuda --config mamba-e128-l4-t82 --members 1,16 --steps 200 --json
step members.txt timeout 120 /tmp/icl bench members --device cuda --config gpt2-e128-l2-t82 --members 1,16 --steps 200 --json
log "done"
