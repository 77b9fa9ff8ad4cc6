#!/usr/bin/env bash
# Session 26, call B, main with split-state merged ($DIR/icl-lab.gz): start to first step on a
# fresh kernel cache (the shipped seed d146faa7c2ec1844 installed by the first process), 1 and
# 16 members of GPT-2 e128 and Mamba e128 (issue 7's 16 runs), and where 16 members' GPU time
# goes for the configs in $NCU_CONFIGS (ncu kernel durations; summarise with
# tests/gpu/ncu_summary.py FILE --top 40).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s26}
BIN=/tmp/icl; gunzip -c $DIR/icl-lab.gz > $BIN && chmod +x $BIN
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} ICL_LAB_KERNEL_CACHE=/tmp/kc
rm -rf /tmp/kc
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
timeout 150 $BIN bench models --steps 20 > "$OUT/models.txt" 2>&1; log "models (fresh cache) rc $?"
cat "$OUT/models.txt" >> "$OUT/log.txt"
for config in gpt2-e128-l2-t82 mamba-e128-l4-t82; do
  timeout 120 $BIN bench members --device cuda --config $config --members 1,16 --steps 200 >> "$OUT/members.txt" 2>&1
  log "members $config rc $?"
done
grep -E "members|ms" "$OUT/members.txt" | tail -12 >> "$OUT/log.txt"
for config in ${NCU_CONFIGS:-}; do  # none unless named: device time was short
  timeout 120 /usr/local/cuda/bin/ncu --clock-control none --metrics gpu__time_duration.sum \
    --launch-skip 4000 --launch-count 1200 --csv $BIN bench members --device cuda --config $config \
    --members 16 --steps 40 > "$OUT/ncu_$config.csv" 2>> "$OUT/ncu_err.txt"
  log "ncu $config rc $?"
  python3 tests/gpu/ncu_summary.py "$OUT/ncu_$config.csv" --top 30 >> "$OUT/log.txt" 2>&1
done
log done
