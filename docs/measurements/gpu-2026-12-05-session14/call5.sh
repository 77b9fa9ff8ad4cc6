#!/usr/bin/env bash
# Session 14, call 5 (call 4's top found the `timeout` wrapper, not icl-lab): which host
# threads are busy while 16 GPT-2 members train (top -H, final binary), and `bench members`
# 1 and 16 for GPT-2 e128 on the same machine.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
gunzip -c gpu/s14/icl-lab.gz > /tmp/icl && chmod +x /tmp/icl
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} ICL_LAB_KERNEL_CACHE=/tmp/kc
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
/tmp/icl bench members --device cuda --config gpt2-e128-l2-t82 --members 16 --steps 1500 > "$OUT/members_top.txt" 2>&1 &
pid=$!
sleep 15
top -H -b -n 2 -d 3 -p "$pid" > "$OUT/top_members16.txt"; tail -22 "$OUT/top_members16.txt"
nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader -l 1 2>&1 | head -3 | tee -a "$OUT/log.txt"
kill $pid; wait
ICL_LAB_STEP_PHASES=1 timeout 60 /tmp/icl bench members --device cuda --config gpt2-e128-l2-t82 --members 1,16 --steps 300 > "$OUT/members.txt" 2>&1
grep -E "phases|^ +(1|16) " "$OUT/members.txt"
