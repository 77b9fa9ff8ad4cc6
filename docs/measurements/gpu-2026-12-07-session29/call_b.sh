#!/usr/bin/env bash
# Session 29, call B: the commit to ship ($DIR, built with call A's seed): `bench models` on a
# fresh kernel cache (the shipped seed installed by its first process: cold start to the first
# step), GPT-2 e128 and e256 against PyTorch eager in TF32 since the bias epilogue (session 28),
# then 1 and 16 members of GPT-2 e128 and Mamba e128.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s29c}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} ICL_LAB_KERNEL_CACHE=/tmp/kc-fresh
BIN=/tmp/icl; gunzip -c $DIR/icl-lab.gz > $BIN && chmod +x $BIN && rm -rf /tmp/kc-fresh
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
timeout 150 $BIN bench models --steps 40 > /tmp/m.txt 2>&1; log "models (fresh cache) rc $?"; cat /tmp/m.txt >> "$OUT/log.txt"
GPT=gpt2-e128-l2-t82,gpt2-e256-l12-t280
timeout 70 $BIN bench models --only $GPT --steps 100 > /tmp/m.txt 2>&1; log "models gpt2 rc $?"; grep -E "^gpt2" /tmp/m.txt >> "$OUT/log.txt"
timeout 100 python3 tests/reference/torch_speed.py --only $GPT --steps 100 --tf32 > /tmp/t.txt 2>&1; log "torch --tf32 rc $?"; tail -4 /tmp/t.txt >> "$OUT/log.txt"
for config in gpt2-e128-l2-t82 mamba-e128-l4-t82; do
  timeout 50 $BIN bench members --device cuda --config $config --members 1,16 --steps 100 > /tmp/m.txt 2>&1
  log "members $config rc $?"; grep -E "^ +(1|16) " /tmp/m.txt >> "$OUT/log.txt"
done
log done
