#!/usr/bin/env bash
# Session 19, call C, on a fresh machine: attention-ilp with its own kernel seed shipped,
# `bench models --steps 100` with nothing set (start-up from the shipped seed), then the
# PyTorch reference in the same call (fp32, and TF32 for the GPT-2 configs).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
gunzip -c gpu/s19c/ilp.gz > /tmp/icl && chmod +x /tmp/icl
log "models (default kernel cache)"
timeout 170 /tmp/icl bench models --steps 100 > "$OUT/models.txt" 2>&1; log "rc $?"
grep -E "^(config|gpt2|mamba)" "$OUT/models.txt" | tee -a "$OUT/log.txt"
pip install --quiet --no-deps --target /tmp/pyl gpu/s19c/mambapy-*.whl 2>&1 | tail -1
log "torch tf32 gpt2"
PYTHONPATH=/tmp/pyl timeout 60 python3 tests/reference/torch_speed.py --steps 100 --tf32 --only gpt2-e128-l2-t82,gpt2-e256-l12-t280 > "$OUT/torch_tf32.jsonl" 2> "$OUT/torch.err"; log "rc $?"
cat "$OUT/torch_tf32.jsonl" | tee -a "$OUT/log.txt"
log "torch fp32"
PYTHONPATH=/tmp/pyl timeout 100 python3 tests/reference/torch_speed.py --steps 100 --only gpt2-e128-l2-t82,gpt2-e256-l12-t280,mamba-e128-l4-t82,mambaformer-e128-l4-t82 > "$OUT/torch.jsonl" 2>> "$OUT/torch.err"; log "rc $?"
cat "$OUT/torch.jsonl" | tee -a "$OUT/log.txt"
log done
