#!/usr/bin/env bash
# Session 18, call 3, cut to the device time left after failed starts (~2 minutes of work).
# Binaries: compact-upload = main before this call's kernels (c758f18 + interleaved samples
# built on the device; main's later commits change only bench code); groups = branch
# launch-groups (the optimiser's kernels take 16 parameters a launch, LayerNorm's ∂γ and ∂β one
# column sum). (1) groups' checks of what it changes (bench adam --check, bench layer-norm
# --check): nothing more runs if either fails; (2) a lone run of GPT-2 e128 and Mamba e128
# (`bench members --members 1`, 200 steps), compact-upload then groups, twice in turn.
# No kernel seed for groups: that needs a longer call.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
for name in groups compact-upload; do gunzip -c gpu/s18/$name.gz > /tmp/ab-$name && chmod +x /tmp/ab-$name; done
ok=1
for check in adam layer-norm; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-ab-groups timeout 60 /tmp/ab-groups bench $check --check --reps 3 > "$OUT/check_$check.txt" 2>&1; rc=$?
  log "check $check rc $rc"; grep -E "^check|median" "$OUT/check_$check.txt" | tee -a "$OUT/log.txt"
  grep -q "^check: all within" "$OUT/check_$check.txt" || ok=0
done
[ $ok = 1 ] || { log "a check failed: stop"; exit 1; }
for round in 1 2; do
  for name in compact-upload groups; do
    for config in gpt2-e128-l2-t82 mamba-e128-l4-t82; do
      ICL_LAB_KERNEL_CACHE=/tmp/kc-ab-$name timeout 40 /tmp/ab-$name bench members --device cuda --config $config --members 1 --steps 200 > "$OUT/lone_${name}_${config}_$round.txt" 2>&1
      log "$name $config round $round rc $?: $(grep -E '^ +1 ' "$OUT/lone_${name}_${config}_$round.txt")"
    done
  done
done
log done
