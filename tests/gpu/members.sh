#!/usr/bin/env bash
# Several seeds as one stacked model on the GPU (issue 7's 16 runs at >= 8x one run), not yet
# run: the session that wrote the members (2026-12-05) had no GPU. One call, about 8 minutes:
#   1. the CUDA checks still hold (kernels unchanged; the stacked paths use tensor ops),
#   2. `bench members`: K seeds in one process, K = 1, 4, 8, 16, GPT-2 e128 and Mamba e128,
#   3. `bench slots --members 16`: 16 runs through the pool (sweep --members) against one.
# Carry the stripped, gzipped release binary (built with --features cuda) as $DIR/icl-lab.gz.
# Results: $OUT/members.txt (tables and JSON), $OUT/log.txt.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s12}
BIN=/tmp/icl; gunzip -c $DIR/icl-lab.gz > $BIN && chmod +x $BIN
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} ICL_LAB_KERNEL_CACHE=/tmp/kc
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
step() { log "$*"; "$@" 2>> "$OUT/log.txt" | tee -a "$OUT/members.txt"; log "rc ${PIPESTATUS[0]}"; }
step timeout 60 $BIN bench adam --check --reps 3
for config in gpt2-e128-l2-t82 mamba-e128-l4-t82; do
  step timeout 150 $BIN bench members --device cuda --config $config --members 1,4,8,16 --steps 200 --json
done
step timeout 200 $BIN bench slots --device cuda:0 --runs 1,16 --members 16 --steps 300 --json
log done
