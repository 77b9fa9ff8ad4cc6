#!/usr/bin/env bash
# Several seeds as one stacked model on the GPU (issue 7's 16 runs at >= 8x one run). Session
# 14 (H200) measured 16 members at 3.30x (GPT-2 e128, 25.95 vs 5.35 ms) and 3.50x (Mamba e128,
# 56.55 vs 12.38 ms), with the GPU ~60 % busy: host work per step is the limit. About 8
# minutes (the shipped kernels make the starts short):
#   1. the CUDA checks (fused Adam; the scan, stacked scans included; the linear layers,
#      stacked ones included),
#   2. `bench members`: K seeds in one process, K = 1, 4, 16, GPT-2 e128 and Mamba e128, with
#      each step's host phases (ICL_LAB_STEP_PHASES=1), and the busy threads (top -H) during
#      16 GPT-2 members,
#   3. `bench slots --members 16`: 16 runs through the pool (sweep --members) against one,
#   4. `ncu` kernel durations over about two 16-member Mamba steps (where the time goes now;
#      summarise with `python3 tests/gpu/ncu_summary.py FILE --top 40`).
# Carry the stripped, gzipped release binary (built with --features cuda) as $DIR/icl-lab.gz.
# Results: $OUT/members.txt (tables and JSON), $OUT/checks.txt, $OUT/ncu_mamba_16.csv, $OUT/log.txt.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s15}
BIN=/tmp/icl; gunzip -c $DIR/icl-lab.gz > $BIN && chmod +x $BIN
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} ICL_LAB_KERNEL_CACHE=/tmp/kc
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
step() { local file=$1; shift; log "$*"; "$@" 2>> "$OUT/log.txt" | tee -a "$OUT/$file"; log "rc ${PIPESTATUS[0]}"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
step checks.txt timeout 60 $BIN bench adam --check --reps 3
step checks.txt timeout 90 $BIN bench scan --check --reps 3 --against none
step checks.txt timeout 90 $BIN bench matmul --check --strategies auto --reps 3 --shape 16,82,128
for config in gpt2-e128-l2-t82 mamba-e128-l4-t82; do
  ICL_LAB_STEP_PHASES=1 step members.txt timeout 120 $BIN bench members --device cuda --config $config --members 1,4,16 --steps 200 --json
done
log "threads during 16 GPT-2 members"
$BIN bench members --device cuda --config gpt2-e128-l2-t82 --members 16 --steps 1500 > /dev/null 2>&1 &
pid=$!; sleep 15
top -H -b -n 2 -d 3 -p $pid | tail -22 | tee -a "$OUT/threads.txt"
nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader -l 1 2>&1 | head -3 | tee -a "$OUT/threads.txt"
kill $pid; wait $pid 2>/dev/null
step members.txt timeout 120 $BIN bench slots --device cuda:0 --runs 1,16 --members 16 --steps 300 --json
log "ncu, 16 Mamba members"
timeout 120 ncu --clock-control none --metrics gpu__time_duration.sum --launch-skip 4000 --launch-count 1200 --csv \
  $BIN bench members --device cuda --config mamba-e128-l4-t82 --members 16 --steps 30 > "$OUT/ncu_mamba_16.csv" 2>> "$OUT/log.txt"
log "done rc $?"
