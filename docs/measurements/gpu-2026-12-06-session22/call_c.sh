#!/usr/bin/env bash
# Session 22, call C: the seeded binary ($DIR/icl-lab.gz, kernels seed 5063318a50547a84 inside)
# on a fresh machine with nothing set (start-up from the shipped seed), then A/B in training on
# the same machine: the default against CubeCL's per-channel scan (ICL_LAB_SCAN_CODE=cubecl)
# and against session 21's matmul tiling (gemm-128x64-w2x2-s3), and PyTorch (TF32) on GPT-2 e256.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s22s}
B=/tmp/icl; gunzip -c $DIR/icl-lab.gz > $B && chmod +x $B
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
ls ~/.cache/icl-lab 2>&1 | tee -a "$OUT/log.txt"
timeout 150 $B bench models --steps 20 > "$OUT/start.txt" 2>&1; log "fresh start rc $?"; cat "$OUT/start.txt" | tee -a "$OUT/log.txt"
ONLY=gpt2-e256-l12-t280,mamba-e256-l24-t280,mamba-e128-l4-t1024
for v in default scan-cubecl gemm-128x64 default; do
  case $v in
    scan-cubecl) export ICL_LAB_SCAN_CODE=cubecl ;;
    gemm-128x64) export ICL_LAB_LINEAR_STRATEGIES=gemm-128x64-w2x2-s3,gemm-128x64-w2x2-s3,gemm-128x64-w2x2-s3 ;;
  esac
  timeout 90 $B bench models --only $ONLY --steps 60 > /tmp/m.txt 2>&1; log "models $v rc $?"
  grep -E "^(gpt2|mamba)" /tmp/m.txt | tee -a "$OUT/log.txt"
  unset ICL_LAB_SCAN_CODE ICL_LAB_LINEAR_STRATEGIES
done
timeout 60 python3 tests/reference/torch_speed.py --only gpt2-e256-l12-t280 --steps 60 --tf32 > /tmp/t.txt 2>&1; log "torch rc $?"; tail -3 /tmp/t.txt | tee -a "$OUT/log.txt"
log done
