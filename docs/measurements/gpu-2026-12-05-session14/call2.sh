#!/usr/bin/env bash
# Session 14, call 2: where a 16-member step's time goes off the GPU (call 1: 16 GPT-2
# members take 36.7 ms a step, of which ~12 ms are kernels). Binary b2 = call 1's b + step
# phase timing (ICL_LAB_STEP_PHASES=1). (1) phase means for 1 and 16 members of GPT-2 e128
# and Mamba e128, (2) an nsys trace of 16 GPT-2 members (CUDA API and kernel summaries).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
gunzip -c gpu/s14/b2.gz > /tmp/b && chmod +x /tmp/b
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} ICL_LAB_KERNEL_CACHE=/tmp/kc-b
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
nproc | tee -a "$OUT/log.txt"
for config in gpt2-e128-l2-t82 mamba-e128-l4-t82; do
  log "phases $config"
  ICL_LAB_STEP_PHASES=1 timeout 100 /tmp/b bench members --device cuda --config $config --members 1,16 --steps 200 > "$OUT/phases_$config.txt" 2>&1; log "rc $?"
  grep -E "phases|^ +(1|16) " "$OUT/phases_$config.txt" | tee -a "$OUT/log.txt"
done
NSYS=$(command -v nsys || ls /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys 2>/dev/null | head -1)
log "nsys: ${NSYS:-none}"
if [ -n "$NSYS" ]; then
  timeout 150 $NSYS profile -t cuda,osrt --stats=false -o /tmp/gpt2_16 -f true \
    /tmp/b bench members --device cuda --config gpt2-e128-l2-t82 --members 16 --steps 100 > "$OUT/nsys_run.txt" 2>&1; log "rc $?"
  timeout 120 $NSYS stats -r cuda_api_sum,cuda_gpu_kern_sum,cuda_gpu_mem_time_sum,osrt_sum --format csv -o "$OUT/gpt2_16" /tmp/gpt2_16.nsys-rep > "$OUT/nsys_stats.txt" 2>&1; log "rc $?"
  head -25 "$OUT"/gpt2_16_cuda_api_sum.csv
fi
log done
