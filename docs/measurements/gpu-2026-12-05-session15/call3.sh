#!/usr/bin/env bash
# Session 15, call 3. new = main with adam-members merged (upload-ahead left out: call 2's
# binary with it gave members' seed-0 losses 0.1 off their lone runs and two token-MQAR runs
# failed in the sweep) and call 2's seed shipped; old = d966383. (1) a fresh machine's first
# process with nothing set, then the `bench models` matrix; (2) `bench members` 1 and 16,
# GPT-2 e128 and Mamba e128, old then new; (3) the seed sweep again on a fresh cache (every
# run must finish; its chunk replaces call 2's if the sweep covers more).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
gunzip -c gpu/s15d/new.gz > /tmp/new && gunzip -c gpu/s15d/old.gz > /tmp/old && chmod +x /tmp/new /tmp/old
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
(
  export HOME=/tmp/home; unset ICL_LAB_KERNEL_CACHE CUDA_CACHE_PATH; mkdir -p $HOME
  sed -n '/^name = "shape-probe"/,/^points = /p' docs/measurements/gpu-2026-12-05-session14/call1.sh > /tmp/probe.toml
  s=$(date +%s.%N); timeout 60 /tmp/new run /tmp/probe.toml --device cuda --no-store --json > /tmp/probe.json 2>> "$OUT/log.txt"; e=$(date +%s.%N)
  log "first process: mamba d=5, 11 points: process_s=$(awk "BEGIN{print $e - $s}") $(grep -o '"first_step_s": *[0-9.e-]*' /tmp/probe.json)"
  log "models"
  timeout 130 /tmp/new bench models --steps 50 --json > "$OUT/models.txt" 2>> "$OUT/log.txt"; log "rc $?"; grep -E "^(config|gpt2|mamba)" "$OUT/models.txt"
)
for config in gpt2-e128-l2-t82 mamba-e128-l4-t82; do
  for bin in old new; do
    log "$bin $config"
    ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin timeout 100 /tmp/$bin bench members --device cuda --config $config --members 1,16 --steps 300 > "$OUT/members_${bin}_$config.txt" 2>&1; log "rc $?"
    grep -E "^ +(1|16) " "$OUT/members_${bin}_$config.txt" | tee -a "$OUT/log.txt"
  done
done
mkdir -p /tmp/sd && cp gpu/s15d/new.gz /tmp/sd/icl-lab.gz
DIR=/tmp/sd SWEEP_S=200 bash tests/gpu/seed_cache.sh
grep "==\|runs:" "$OUT/seed_log.txt"; grep "failed" "$OUT/seed_log.txt" | cut -c1-200 | head -5
log done
