#!/usr/bin/env bash
# Session 19, calls E (BIN=ilp, the merged binary; output in call_e/) and F (BIN=base, main
# 58e05bb; output in call_f/): what bounds the attention kernels at GPT-2 e256's shape (Nsight Compute,
# the three kernels once each after warm-up: occupancy, launch statistics, warp stall reasons,
# throughput), merged binary.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} ICL_LAB_KERNEL_CACHE=/tmp/kc-e-${BIN:-ilp}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/log.txt"
gunzip -c gpu/s19c/${BIN:-ilp}.gz  # base.gz: main 58e05bb, as in call A > /tmp/b && chmod +x /tmp/b
timeout 60 /tmp/b bench attention --reps 2 > /dev/null 2>&1
timeout 240 /usr/local/cuda/bin/ncu --kernel-name regex:attention_ --launch-skip 6 --launch-count 3 \
  --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
  --section ComputeWorkloadAnalysis --section SchedulerStats --section InstructionStats \
  /tmp/b bench attention --reps 3 > "$OUT/ncu_attention_${BIN:-ilp}.txt" 2> "$OUT/ncu_attention_${BIN:-ilp}.err"
echo "rc $?" | tee -a "$OUT/log.txt"
grep -E "attention_|Duration|Registers Per|Achieved Occupancy|Theoretical Occupancy|Block Limit|Compute \(SM\) Throughput|Memory Throughput|Issued Ipc|No Eligible|Stall|Warp Cycles Per Issued" "$OUT/ncu_attention_${BIN:-ilp}.txt" | head -80
