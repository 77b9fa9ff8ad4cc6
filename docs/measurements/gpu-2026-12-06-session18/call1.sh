#!/usr/bin/env bash
# Session 18, call 1, on a fresh machine: (1) main (c758f18) `bench models --steps 100` with
# nothing set, so its first config's cold start is the shipped kernel seed's start-up;
# (2) the PyTorch reference in the same call (torch_speed.py, mambapy 1.2.0 carried as a
# wheel), fp32 then TF32 for the GPT-2 configs; (3) `bench members` 1 and 16, main against
# compact-upload (main + interleaved samples built on the device), tests/gpu/members_ab.sh.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
gunzip -c gpu/s18/main.gz > /tmp/ab-main && chmod +x /tmp/ab-main
log "models main (fresh machine, default kernel cache)"
timeout 200 /tmp/ab-main bench models --steps 100 > "$OUT/models_main.txt" 2>&1; log "rc $?"
grep -E "^(config|gpt2|mamba)" "$OUT/models_main.txt" | tee -a "$OUT/log.txt"
pip install --quiet --no-deps --target /tmp/pyl gpu/s18/mambapy-*.whl 2>&1 | tail -1
log "torch fp32"
PYTHONPATH=/tmp/pyl timeout 150 python3 tests/reference/torch_speed.py --steps 100 > "$OUT/torch.jsonl" 2> "$OUT/torch.err"; log "rc $?"
cat "$OUT/torch.jsonl" | tee -a "$OUT/log.txt"
log "torch tf32 gpt2"
PYTHONPATH=/tmp/pyl timeout 60 python3 tests/reference/torch_speed.py --steps 100 --tf32 --only gpt2-e128-l2-t82,gpt2-e256-l12-t280 > "$OUT/torch_tf32.jsonl" 2>> "$OUT/torch.err"; log "rc $?"
cat "$OUT/torch_tf32.jsonl" | tee -a "$OUT/log.txt"
DIR=gpu/s18 CHECKS="" PHASES=0 BINS="main compact-upload" bash tests/gpu/members_ab.sh
log done
