#!/usr/bin/env bash
# Our matmul kernel (icl_lab_kernels::gemm) on the GPU, one call (~5 minutes), for a binary
# whose linear layers default to it: `bench matmul --check` of every form and of the linear
# layers, its times beside cubek's (session 20's choice and other tilings) and cuBLAS (PyTorch,
# TF32) at GPT-2 e256's shapes, training against the old strategies (ICL_LAB_LINEAR_STRATEGIES,
# same binary), PyTorch on GPT-2 e256, then the kernel seed (seed_cache.sh, SWEEP_S). GEMMS: the
# tilings timed (default: the two measured in session 21 and three with 64 x 64 warp tiles,
# ~210 registers and no spills by kernels/sass.py).
# Carry a stripped, gzipped release binary (--features cuda) as $DIR/icl-lab.gz.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s21}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} ICL_LAB_KERNEL_CACHE=/tmp/kc-gemm ICL_LAB_HOME=/tmp/store-gemm
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
gunzip -c $DIR/icl-lab.gz > /tmp/g && chmod +x /tmp/g
OLD=tile-tma-m4x2-n4-k4-s,tile-tma-m4x2-n4-k4-s,simple-rows-mma
NOW="tile-tma-m4x2-n4-k4-s,simple-rows-mma,tile-dtma-m4x2-n4-k4-s"
G=${GEMMS:-gemm-128x64-w2x2-s3,gemm-128x128-w2x4-s3,gemm-128x128-w2x2-s3,gemm-256x128-w4x2-s3,gemm-128x256-w2x4-s3}
timeout 120 /tmp/g bench matmul --check --reps 3 --shape 8,40,64 --strategies "$NOW,$G" > "$OUT/check.txt" 2>&1; log "check rc $?"
grep -B1 -A40 "^relative error" "$OUT/check.txt" | grep -v "^ *n/a" | head -40 | tee -a "$OUT/log.txt"
timeout 90 /tmp/g bench matmul --reps 20 --shape 64,280,256 --strategies "$NOW,$G" > /tmp/mm.txt 2>&1; log "time rc $?"
grep -A12 "one GPT-2 block" /tmp/mm.txt | tee -a "$OUT/log.txt"
timeout 40 python3 tests/gpu/torch_matmuls.py 64,280,256 2>&1 | tee -a "$OUT/log.txt"
for v in new old; do
  if [ $v = old ]; then export ICL_LAB_LINEAR_STRATEGIES=$OLD; else unset ICL_LAB_LINEAR_STRATEGIES; fi
  timeout 70 /tmp/g bench models --only gpt2-e256-l12-t280,gpt2-e128-l2-t82,mamba-e128-l4-t82 --steps 60 > /tmp/m.txt 2>&1; log "models $v rc $?"
  grep -E "^(gpt2|mamba)" /tmp/m.txt | tee -a "$OUT/log.txt"
  for config in gpt2-e128-l2-t82 mamba-e128-l4-t82; do
    timeout 45 /tmp/g bench members --device cuda --config $config --members 1,16 --steps 150 > /tmp/mb.txt 2>&1; log "members $v $config rc $?"
    grep -E "^ +(1|16) " /tmp/mb.txt | tee -a "$OUT/log.txt"
  done
done
unset ICL_LAB_LINEAR_STRATEGIES
timeout 45 python3 tests/reference/torch_speed.py --only gpt2-e256-l12-t280 --steps 60 --tf32 > /tmp/t.txt 2>&1; log "torch rc $?"; tail -3 /tmp/t.txt | tee -a "$OUT/log.txt"
DIR=$DIR SWEEP_S=${SWEEP_S:-100} bash tests/gpu/seed_cache.sh > /dev/null 2>&1
grep -E "==|^(config|gpt2|mamba)" "$OUT/seed_log.txt" | tee -a "$OUT/log.txt"
log done
