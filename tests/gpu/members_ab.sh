#!/usr/bin/env bash
# Several binaries compared on one machine: the checks that their changes touch, then
# `bench members` 1 and 16 for GPT-2 e128 and Mamba e128 with each step's host phases
# (ICL_LAB_STEP_PHASES=1). Carry each stripped, gzipped release binary (built with
# --features cuda) as $DIR/<name>.gz and name them in $BINS (the first is the baseline), e.g.
#   DIR=gpu/s15 BINS="main adam-members upload-ahead" bash tests/gpu/members_ab.sh
# An entry NAME@VAR=VALUE runs $DIR/NAME.gz with that variable set (e.g.
# channel-lean@ICL_LAB_SCAN_KERNEL=channel), so one binary can be timed under two settings.
# CHECKS names the `bench <kernel> --check` commands to run first (default: adam layer-norm).
# PHASES=0 times without the host phases (they add a little host work a step; default 1).
# About 1.5 minutes a binary once its kernels are compiled (a binary whose kernels differ from
# the shipped ones compiles its own first: add ~20-40 s). Results: $OUT/<name>[-<value>].txt,
# $OUT/log.txt.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s15}; BINS=${BINS:-main}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
for entry in $BINS; do
  name=${entry%%@*}; setting=; [ "$entry" != "$name" ] && setting=${entry#*@}
  bin=/tmp/ab-$name; [ -x $bin ] || { gunzip -c "$DIR/$name.gz" > $bin && chmod +x $bin; }
  export ICL_LAB_KERNEL_CACHE=/tmp/kc-ab-$name
  [ -n "$setting" ] && export "$setting" && name="$name-${setting#*=}"  # no @: $OUT names must be plain
  log "$name: checks"
  for check in ${CHECKS-adam layer-norm}; do
    timeout 90 $bin bench $check --check --reps 3 >> "$OUT/$name.txt" 2>&1; log "$check rc $?"
  done
  grep -E "^check" "$OUT/$name.txt" | tee -a "$OUT/log.txt"
  for config in gpt2-e128-l2-t82 mamba-e128-l4-t82; do
    log "$name: members $config"
    ICL_LAB_STEP_PHASES=${PHASES-1} timeout 120 $bin bench members --device cuda --config $config --members 1,16 --steps 300 >> "$OUT/$name.txt" 2>&1; log "rc $?"
  done
  grep -E "phases|^ +(1|16) " "$OUT/$name.txt" | tee -a "$OUT/log.txt"
  [ -n "$setting" ] && unset "${setting%%=*}"
done
