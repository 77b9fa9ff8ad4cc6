#!/usr/bin/env bash
# Session 14, call 4: the session's final binary (3684f6e: the new kernel seed shipped).
# (1) a fresh machine's first process with nothing set (new HOME: the seed installs), then
# the `bench models` matrix; (2) which host threads are busy during 16 GPT-2 members (top -H);
# (3) PyTorch's matrix (tests/reference/torch_speed.py) in the same lease.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
gunzip -c gpu/s14/icl-lab.gz > /tmp/icl && chmod +x /tmp/icl
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} HOME=/tmp/home
unset ICL_LAB_KERNEL_CACHE CUDA_CACHE_PATH
mkdir -p $HOME
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
sed -n '/^name = "shape-probe"/,/^points = /p' docs/measurements/gpu-2026-12-05-session14/call1.sh > /tmp/probe.toml
s=$(date +%s.%N); timeout 60 /tmp/icl run /tmp/probe.toml --device cuda --no-store --json > /tmp/probe.json 2>> "$OUT/log.txt"; e=$(date +%s.%N)
log "first process: mamba d=5, 11 points: process_s=$(awk "BEGIN{print $e - $s}") $(grep -o '"first_step_s": *[0-9.e-]*' /tmp/probe.json)"
log "models"
timeout 130 /tmp/icl bench models --steps 50 --json > "$OUT/models.txt" 2>> "$OUT/log.txt"; log "rc $?"; grep -E "^(config|gpt2|mamba)" "$OUT/models.txt"
log "threads, 16 GPT-2 members"
timeout 40 /tmp/icl bench members --device cuda --config gpt2-e128-l2-t82 --members 16 --steps 1200 > "$OUT/members_top.txt" 2>&1 &
sleep 12; pid=$(pgrep -f "^/tmp/icl bench members" | head -1)
top -H -b -n 2 -d 3 -p "$pid" | tail -25 > "$OUT/top_members16.txt"; head -8 "$OUT/top_members16.txt"
wait
pip install --no-deps --target /tmp/site gpu/s14/mambapy-1.2.0-py3-none-any.whl > /dev/null 2>&1
log "torch"
PYTHONPATH=/tmp/site timeout 160 python3 tests/reference/torch_speed.py --steps 100 > "$OUT/torch.txt" 2> "$OUT/torch_err.txt"; log "rc $?"; cut -c1-120 "$OUT/torch.txt"
log done
