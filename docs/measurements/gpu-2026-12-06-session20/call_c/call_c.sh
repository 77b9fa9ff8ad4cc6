#!/usr/bin/env bash
# Session 20 call C: the linear layers on our own tiles (forward, dx) against the old
# strategies (ICL_LAB_LINEAR_STRATEGIES, same binary), checks, PyTorch TF32 on GPT-2 e256, the seed.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
B=/tmp/cand; gunzip -c gpu/s20/icl-lab.gz > $B && chmod +x $B
export ICL_LAB_KERNEL_CACHE=/tmp/kc-c ICL_LAB_HOME=/tmp/store-c
OLD=simple-tma-cmma,specialized-tma-cmma,simple-rows-mma
timeout 120 $B bench matmul --check --reps 3 --shape 8,40,64 --strategies simple-tma-cmma > /tmp/chk.txt 2>&1; log "matmul check rc $?"
grep -A12 "^linear layers" /tmp/chk.txt | tee -a "$OUT/log.txt"
for round in 1 2; do for v in new old; do
  if [ $v = old ]; then export ICL_LAB_LINEAR_STRATEGIES=$OLD; else unset ICL_LAB_LINEAR_STRATEGIES; fi
  timeout 100 $B bench models --only gpt2-e256-l12-t280,gpt2-e128-l2-t82,mamba-e128-l4-t82 --steps 100 > /tmp/m.txt 2>&1; log "models $v rc $?"
  grep -E "^(gpt2|mamba)" /tmp/m.txt | tee -a "$OUT/log.txt"
done; done
for v in new old; do
  if [ $v = old ]; then export ICL_LAB_LINEAR_STRATEGIES=$OLD; else unset ICL_LAB_LINEAR_STRATEGIES; fi
  for config in gpt2-e128-l2-t82 mamba-e128-l4-t82; do
    timeout 90 $B bench members --device cuda --config $config --members 1,16 --steps 300 > /tmp/mb.txt 2>&1; log "members $v $config rc $?"
    grep -E "^ +(1|16) " /tmp/mb.txt | tee -a "$OUT/log.txt"
  done
done
unset ICL_LAB_LINEAR_STRATEGIES
timeout 60 python3 tests/reference/torch_speed.py --only gpt2-e256-l12-t280 --steps 100 --tf32 > /tmp/t.txt 2>&1; log "torch rc $?"; tail -4 /tmp/t.txt | tee -a "$OUT/log.txt"
mkdir -p /tmp/sd && cp gpu/s20/icl-lab.gz /tmp/sd/icl-lab.gz
DIR=/tmp/sd SWEEP_S=${SWEEP_S:-120} bash tests/gpu/seed_cache.sh > /dev/null 2>&1
grep -E "==|^(config|gpt2|mamba)" "$OUT/seed_log.txt" | tee -a "$OUT/log.txt"
ls -la $OUT
log done
