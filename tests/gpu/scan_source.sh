#!/usr/bin/env bash
# Our CUDA C++ per-channel scan (kernels/src/scan/source.rs) against CubeCL's kernel of the
# same layout (ICL_LAB_SCAN_CODE=cubecl), one binary, one call (~6 minutes): the fused scan
# checked against the tensor-op scan with each code (`bench scan --check`, six shapes and two
# stacked, 1e-4), the kernels alone at the shapes training meets and issue 7's, `bench members`
# of Mamba e128 (1 and 16) with each, GPT-2 e128 (1 and 16), and matmul tilings (GEMMS;
# MATMUL=0 skips them).
# Carry the stripped, gzipped release binary (--features cuda) as $DIR/icl-lab.gz.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s22}
BIN=/tmp/icl-src; gunzip -c $DIR/icl-lab.gz > $BIN && chmod +x $BIN
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} ICL_LAB_KERNEL_CACHE=/tmp/kc-src ICL_LAB_HOME=/tmp/store-src
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
for code in source cubecl; do
  ICL_LAB_SCAN_CODE=$code timeout 100 $BIN bench scan --check --kernel channel --shape 64,82,256,16 --against none --reps 3 > "$OUT/check_$code.txt" 2>&1
  log "check $code rc $?: $(grep '^check:' "$OUT/check_$code.txt")"
done
grep -A12 "max relative error" "$OUT/check_source.txt" | tee -a "$OUT/log.txt"
SHAPES=${SHAPES:-"64,82,256,16 1024,82,256,16 64,280,512,16 64,1024,512,16"}
for shape in $SHAPES; do
  for code in source cubecl; do
    ICL_LAB_SCAN_CODE=$code timeout 40 $BIN bench scan --kernel channel --shape $shape --against none --reps 10 > /tmp/scan.txt 2>&1
    log "scan $code $shape rc $?: $(grep -E 'kernels |forward only' /tmp/scan.txt | tr -s ' ' | tr '\n' ';')"
    cat /tmp/scan.txt >> "$OUT/scan_$code.txt"
  done
done
for code in source cubecl; do
  ICL_LAB_SCAN_CODE=$code timeout 60 $BIN bench members --device cuda --config mamba-e128-l4-t82 --members 1,16 --steps 200 > "$OUT/members_$code.txt" 2>&1
  log "members mamba $code rc $?"; grep -E "^ +(1|16) " "$OUT/members_$code.txt" | tee -a "$OUT/log.txt"
done
timeout 50 $BIN bench members --device cuda --config gpt2-e128-l2-t82 --members 1,16 --steps 200 > "$OUT/members_gpt2.txt" 2>&1
log "members gpt2 rc $?"; grep -E "^ +(1|16) " "$OUT/members_gpt2.txt" | tee -a "$OUT/log.txt"
[ "${MATMUL:-1}" = 0 ] && { log done; exit 0; }
G=${GEMMS:-gemm-128x128-w2x4-s3,gemm-128x64-w2x2-s3,gemm-128x128-w2x2-s3,gemm-256x128-w4x2-s3,gemm-128x256-w2x4-s3,gemm-128x128-w2x4-s4}
timeout 90 $BIN bench matmul --reps 20 --shape 64,280,256 --strategies "$G" > "$OUT/matmul.txt" 2>&1; log "matmul rc $?"
grep -A12 "one GPT-2 block" "$OUT/matmul.txt" | tee -a "$OUT/log.txt"
timeout 60 $BIN bench matmul --reps 20 --shape 1024,82,128 --strategies "$G" > "$OUT/matmul_members.txt" 2>&1; log "matmul members rc $?"
grep -A12 "one GPT-2 block" "$OUT/matmul_members.txt" | tee -a "$OUT/log.txt"
log done
