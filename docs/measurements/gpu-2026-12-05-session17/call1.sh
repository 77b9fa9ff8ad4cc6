#!/usr/bin/env bash
# Session 17, call 1: session 16's kernel branch against main on one machine, each a stripped
# release binary (--features cuda) in gpu/s17: main (106a245) and session16 (main +
# channel-lean + fused-conv + `bench conv`). Each: the checks of what it changes, then `bench
# members` 1 and 16 for GPT-2 e128 and Mamba e128 (tests/gpu/members_ab.sh, no phase timing).
# session16 runs twice: as built (per-state scan, fused conv) and with the lean per-channel
# scan (ICL_LAB_SCAN_KERNEL=channel). Then the `bench models` matrix, main then session16.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export DIR=gpu/s17 PHASES=0
CHECKS="" BINS="main" bash tests/gpu/members_ab.sh
CHECKS="conv" BINS="session16" bash tests/gpu/members_ab.sh
CHECKS="scan" BINS="session16@ICL_LAB_SCAN_KERNEL=channel" bash tests/gpu/members_ab.sh
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
for name in main session16; do
  echo "== $(date +%T) models $name" | tee -a "$OUT/log.txt"
  ICL_LAB_KERNEL_CACHE=/tmp/kc-ab-$name timeout 150 /tmp/ab-$name bench models --steps 50 > "$OUT/models_$name.txt" 2>&1
  echo "== $(date +%T) rc $?" | tee -a "$OUT/log.txt"; grep -E "^(config|gpt2|mamba)" "$OUT/models_$name.txt" | tee -a "$OUT/log.txt"
done
