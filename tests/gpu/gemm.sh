#!/usr/bin/env bash
# Our matmul kernel (icl_lab_kernels::gemm) on the GPU, one call (~7 minutes): `bench matmul
# --check` of every form, its times beside cubek's tilings and cuBLAS (PyTorch, TF32) at GPT-2
# e256's and 16 GPT-2 e128 members' shapes, then training with the linear layers on it
# (ICL_LAB_LINEAR_STRATEGIES) against the defaults, same binary, and PyTorch on GPT-2 e256.
# Carry a stripped, gzipped release binary (--features cuda) as $DIR/icl-lab.gz.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s21}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} ICL_LAB_KERNEL_CACHE=/tmp/kc-gemm ICL_LAB_HOME=/tmp/store-gemm
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
gunzip -c $DIR/icl-lab.gz > /tmp/g && chmod +x /tmp/g
NOW="tile-tma-m4x2-n4-k4-s,simple-rows-mma"
TILES=${TILES:-tile-dtma-m4x2-n4-k4-s,tile-stma-m4x2-n4-k4-s,tile-tma-m4x2-n4-k4-s-mma}
G=${GEMMS:-gemm-128x64-w2x2-s3,gemm-128x64-w2x2-s4,gemm-128x128-w2x4-s3,gemm-64x64-w2x2-s4,gemm-64x128-w2x2-s3,gemm-128x64-w4x1-s3}
GEMM=${GEMM:-gemm-128x64-w2x2-s3}
timeout 150 /tmp/g bench matmul --check --reps 3 --shape 8,40,64 --strategies "$NOW,$G,$TILES" > "$OUT/check.txt" 2>&1; log "check rc $?"
grep -A40 "^relative error" "$OUT/check.txt" | head -50 | tee -a "$OUT/log.txt"
ICL_LAB_LINEAR_STRATEGIES=$GEMM,$GEMM,$GEMM timeout 100 /tmp/g bench matmul --check --reps 1 --shape 8,40,64 --strategies "$GEMM" > /tmp/lin.txt 2>&1; log "linear check on $GEMM rc $?"
grep -A12 "^linear layers" /tmp/lin.txt | tee -a "$OUT/log.txt"
for shape in 64,280,256 1024,82,128; do
  timeout 120 /tmp/g bench matmul --reps 20 --shape $shape --strategies "$NOW,$G,$TILES" > /tmp/mm.txt 2>&1; log "time $shape rc $?"
  grep -A20 "one GPT-2 block" /tmp/mm.txt | tee -a "$OUT/log.txt"
  timeout 60 python3 tests/gpu/torch_matmuls.py $shape 2>&1 | tee -a "$OUT/log.txt"
done
for v in gemm default; do
  if [ $v = gemm ]; then export ICL_LAB_LINEAR_STRATEGIES=$GEMM,$GEMM,$GEMM; else unset ICL_LAB_LINEAR_STRATEGIES; fi
  timeout 90 /tmp/g bench models --only gpt2-e256-l12-t280,gpt2-e128-l2-t82,mamba-e128-l4-t82 --steps 100 > /tmp/m.txt 2>&1; log "models $v rc $?"
  grep -E "^(gpt2|mamba)" /tmp/m.txt | tee -a "$OUT/log.txt"
  for config in gpt2-e128-l2-t82 mamba-e128-l4-t82; do
    timeout 60 /tmp/g bench members --device cuda --config $config --members 1,16 --steps 200 > /tmp/mb.txt 2>&1; log "members $v $config rc $?"
    grep -E "^ +(1|16) " /tmp/mb.txt | tee -a "$OUT/log.txt"
  done
done
unset ICL_LAB_LINEAR_STRATEGIES
timeout 60 python3 tests/reference/torch_speed.py --only gpt2-e256-l12-t280 --steps 100 --tf32 > /tmp/t.txt 2>&1; log "torch rc $?"; tail -3 /tmp/t.txt | tee -a "$OUT/log.txt"
log done
