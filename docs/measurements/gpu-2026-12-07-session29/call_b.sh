#!/usr/bin/env bash
# Session 29, call B: the commit to ship ($DIR, built with call A's seed e5129c46a759b70d):
# `bench models` on a fresh kernel cache (the shipped seed installed by its first process: cold
# start to the first step); against $BASE (main 48e5ed2's kernels) in this one call, Nsight
# kernel times of 16 Mamba e128 members and the scan shape, each binary in turn; then
# GPT-2 e128 and e256 against PyTorch eager in TF32 since the bias epilogue (session 28).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s29c}; BASE=${BASE:-gpu/opt}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
for b in base:$BASE new:$DIR; do gunzip -c ${b#*:}/icl-lab.gz > /tmp/${b%%:*} && chmod +x /tmp/${b%%:*}; done
rm -rf /tmp/kc-new /tmp/kc-base
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
ICL_LAB_KERNEL_CACHE=/tmp/kc-new timeout 150 /tmp/new bench models --steps 40 > /tmp/m.txt 2>&1; log "models (fresh cache) rc $?"; cat /tmp/m.txt >> "$OUT/log.txt"
ICL_LAB_KERNEL_CACHE=/tmp/kc-base timeout 60 /tmp/base bench members --device cuda --config mamba-e128-l4-t82 --members 16 --steps 20 > /dev/null 2>&1; log "base warm-up rc $?"
for bin in base new; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin timeout 60 /usr/local/cuda/bin/ncu --clock-control none --metrics gpu__time_duration.sum \
    --launch-skip 4000 --launch-count 1200 --csv /tmp/$bin bench members --device cuda --config mamba-e128-l4-t82 \
    --members 16 --steps 80 > "$OUT/ncu_mamba_$bin.csv" 2>> "$OUT/ncu_err.txt"
  log "ncu mamba $bin rc $?"
  python3 tests/gpu/ncu_summary.py "$OUT/ncu_mamba_$bin.csv" --shapes --top 14 >> "$OUT/log.txt" 2>&1
done
for bin in base new; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin timeout 40 /tmp/$bin bench scan --reps 5 --against none > /tmp/m.txt 2>&1
  log "scan $bin rc $?"; grep -E "kernels|autodiff|forward only" /tmp/m.txt >> "$OUT/log.txt"
done
GPT=gpt2-e128-l2-t82,gpt2-e256-l12-t280
ICL_LAB_KERNEL_CACHE=/tmp/kc-new timeout 70 /tmp/new bench models --only $GPT --steps 100 > /tmp/m.txt 2>&1; log "models gpt2 rc $?"; grep -E "^gpt2" /tmp/m.txt >> "$OUT/log.txt"
timeout 100 python3 tests/reference/torch_speed.py --only $GPT --steps 100 --tf32 > /tmp/t.txt 2>&1; log "torch --tf32 rc $?"; tail -4 /tmp/t.txt >> "$OUT/log.txt"
log done
