#!/usr/bin/env bash
# Session 22, call D (the session's last device minutes; calls C and C-prefetch never got a
# machine): most important first. The seeded binary (gpu/s22s) on a fresh machine with nothing
# set; branch scan-prefetch's scan (gpu/s22p) against it, kernels alone; training with our scan
# against CubeCL's (ICL_LAB_SCAN_CODE=cubecl); PyTorch TF32 on GPT-2 e256; 16 Mamba members.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
S=/tmp/icl; gunzip -c gpu/s22s/icl-lab.gz > $S && chmod +x $S
P=/tmp/icl-p; gunzip -c gpu/s22p/icl-lab.gz > $P && chmod +x $P
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
ls ~/.cache/icl-lab 2>&1 | tee -a "$OUT/log.txt"
timeout 150 $S bench models --steps 20 > "$OUT/start.txt" 2>&1; log "fresh start rc $?"; tee -a "$OUT/log.txt" < "$OUT/start.txt"
for shape in 64,1024,512,16 1024,82,256,16; do
  for b in $S $P; do
    ICL_LAB_KERNEL_CACHE=/tmp/kc-$(basename $b) timeout 40 $b bench scan --kernel channel --shape $shape --against none --reps 10 > /tmp/scan.txt 2>&1
    log "scan $b $shape rc $?: $(grep -E 'kernels |forward only' /tmp/scan.txt | tr -s ' ' | tr '\n' ';')"
  done
done
for code in source cubecl; do
  ICL_LAB_SCAN_CODE=$code timeout 60 $S bench models --only gpt2-e256-l12-t280,mamba-e256-l24-t280 --steps 60 > /tmp/m.txt 2>&1; log "models scan $code rc $?"
  grep -E "^(gpt2|mamba)" /tmp/m.txt | tee -a "$OUT/log.txt"
done
timeout 60 python3 tests/reference/torch_speed.py --only gpt2-e256-l12-t280 --steps 60 --tf32 > /tmp/t.txt 2>&1; log "torch rc $?"; tail -3 /tmp/t.txt | tee -a "$OUT/log.txt"
for b in $S $P; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-$(basename $b) timeout 60 $b bench members --device cuda --config mamba-e128-l4-t82 --members 1,16 --steps 200 > /tmp/mb.txt 2>&1
  log "members $b rc $?"; grep -E "^ +(1|16) " /tmp/mb.txt | tee -a "$OUT/log.txt"
done
log done
