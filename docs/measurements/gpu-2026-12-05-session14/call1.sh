#!/usr/bin/env bash
# Session 14, call 1. Binary a = 8cc8bcd (the session's start, its shipped kernels valid);
# binary b = a + LayerNorm kernels for stacked models (per-member γ, β; not in the shipped
# kernels, so b compiles its own). (1) a fresh machine's first process with nothing set (new
# HOME: a's shipped kernels install), (2) `bench layer-norm --check` (b: stacked shapes too),
# (3) `bench members` 1 and 16 for GPT-2 e128 and Mamba e128 (b) and 16 GPT-2 members (a),
# (4) ncu kernel durations over 16-member GPT-2 and Mamba steps (b; summarise with
# tests/gpu/ncu_summary.py).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
gunzip -c gpu/s14/icl-lab.gz > /tmp/a && gunzip -c gpu/s14/b1.gz > /tmp/b && chmod +x /tmp/a /tmp/b
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} HOME=/tmp/home
unset ICL_LAB_KERNEL_CACHE CUDA_CACHE_PATH
mkdir -p $HOME
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$OUT/log.txt"
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
s=$(date +%s.%N); timeout 100 /tmp/a run /tmp/probe.toml --device cuda --no-store --json > /tmp/probe.json 2>> "$OUT/log.txt"; e=$(date +%s.%N)
log "first process (a): mamba d=5, 11 points: process_s=$(awk "BEGIN{print $e - $s}") $(grep -o '"first_step_s": *[0-9.e-]*' /tmp/probe.json)"
log "members a gpt2 16"
timeout 90 /tmp/a bench members --device cuda --config gpt2-e128-l2-t82 --members 1,16 --steps 200 --json > "$OUT/members_a.txt" 2>> "$OUT/log.txt"; log "rc $?"
export ICL_LAB_KERNEL_CACHE=/tmp/kc-b
log "layer-norm check (b)"
timeout 90 /tmp/b bench layer-norm --check --reps 5 > "$OUT/layer_norm_check.txt" 2>> "$OUT/log.txt"; log "rc $?"; grep -E "check|\[" "$OUT/layer_norm_check.txt"
for config in gpt2-e128-l2-t82 mamba-e128-l4-t82; do
  log "members b $config"
  timeout 100 /tmp/b bench members --device cuda --config $config --members 1,16 --steps 200 --json >> "$OUT/members_b.txt" 2>> "$OUT/log.txt"; log "rc $?"
done
grep -v '^{' "$OUT/members_a.txt" "$OUT/members_b.txt" | tail -16
log "ncu gpt2 16 (b)"
timeout 100 /usr/local/cuda/bin/ncu --clock-control none --metrics gpu__time_duration.sum --launch-skip 3000 --launch-count 800 --csv \
  /tmp/b bench members --device cuda --config gpt2-e128-l2-t82 --members 16 --steps 40 > "$OUT/ncu_gpt2_16.csv" 2>> "$OUT/log.txt"; log "rc $?"
log "ncu mamba 16 (b)"
timeout 110 /usr/local/cuda/bin/ncu --clock-control none --metrics gpu__time_duration.sum --launch-skip 4000 --launch-count 1000 --csv \
  /tmp/b bench members --device cuda --config mamba-e128-l4-t82 --members 16 --steps 30 > "$OUT/ncu_mamba_16.csv" 2>> "$OUT/log.txt"; log "rc $?"
log done
