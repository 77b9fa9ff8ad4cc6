#!/usr/bin/env bash
# A branch whose kernels changed, in one or two GPU calls:
# (1) its `bench <kernel> --check` for each of $CHECKS (default: every fused kernel); nothing
#     more runs if one fails;
# (2) its kernel seed (tests/gpu/seed_cache.sh, sweep cut at $SWEEP_S s), before the timings,
#     so that a call cut short still returns it;
# (3) main against it on one machine: `bench attention` at GPT-2 e256's and e128's shapes,
#     $ATTENTION_ROUNDS rounds (default 2); `bench scan`'s kernels, plain and in Mamba's form,
#     at issue 7's shape and at 16 Mamba e128 members', $SCAN_ROUNDS rounds (default 1);
#     `bench members` 1 and 16 for GPT-2 e128 and Mamba e128 (tests/gpu/members_ab.sh).
# BINS (default "base cand") names the binaries (3) times, in order, e.g. "base s30 cand" to
# time a branch's earlier commit beside its tip; the checks and the seed are cand's.
# SEED=0 skips (2), MEMBERS=0 the `bench members` part of (3): the whole takes about 10 minutes,
# a device call's limit, so split it over two calls, e.g. `CHECKS=scan ATTENTION_ROUNDS=0
# MEMBERS=0` then `CHECKS= SEED=0 ATTENTION_ROUNDS=0`.
# Carry stripped, gzipped release binaries (--features cuda) in $DIR: base.gz (main), cand.gz
# (the branch) and any other that BINS names. $OUT ends with the log, the checks, a file a
# binary (bench members), seed_log and the seed. Then, if the checks pass and the times hold: copy $OUT/<key>.cbor.gz to kernels/seed/,
# name it in SEEDS (src/runtime/kernel_cache.rs), delete the old seed, merge.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s20}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
BINS=${BINS:-base cand}
for n in $(printf "%s\n" $BINS cand | sort -u); do gunzip -c $DIR/$n.gz > /tmp/ab-$n && chmod +x /tmp/ab-$n; done
ok=1
for check in ${CHECKS-conv attention scan layer-norm adam}; do
  # One file for every check: the device returns at most 8 files, and the seed must be one.
  ICL_LAB_KERNEL_CACHE=/tmp/kc-ab-cand timeout 100 /tmp/ab-cand bench $check --check --reps 3 > /tmp/check.txt 2>&1
  log "check $check rc $?"; cat /tmp/check.txt >> "$OUT/checks.txt"; grep -E "^check|median" /tmp/check.txt | tee -a "$OUT/log.txt"
  grep -q "^check: all within" /tmp/check.txt || ok=0
done
[ $ok = 1 ] || { log "a check failed: stop"; exit 1; }
if [ "${SEED:-1}" != 0 ]; then
  mkdir -p /tmp/sd && cp $DIR/cand.gz /tmp/sd/icl-lab.gz
  DIR=/tmp/sd SWEEP_S=${SWEEP_S:-150} bash tests/gpu/seed_cache.sh
  grep "==" "$OUT/seed_log.txt"; grep -E "^(config|gpt2|mamba)" "$OUT/seed_log.txt"
fi
for round in $(seq ${ATTENTION_ROUNDS:-2}); do for n in $BINS; do for shape in 64,280,256,8 1024,82,128,8; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-ab-$n timeout 40 /tmp/ab-$n bench attention --reps 20 --shape $shape > /tmp/att.txt 2>&1
  log "attention $n $shape: $(grep fused /tmp/att.txt | head -1)"
done; done; done
# The scan's kernels alone, plain and in Mamba's form: issue 7's shape and 16 Mamba e128
# members' (1,024 rows of d_inner 256).
for round in $(seq ${SCAN_ROUNDS:-1}); do for n in $BINS; do for shape in 64,1024,512,16 1024,82,256,16; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-ab-$n timeout 60 /tmp/ab-$n bench scan --reps 10 --against none --shape $shape > /tmp/scan.txt 2>&1
  log "scan $n $shape: $(grep -E '^  kernels' /tmp/scan.txt | tr -s ' ' | tr '\n' ';')"
done; done; done
[ "${MEMBERS:-1}" != 0 ] && DIR=$DIR CHECKS="" PHASES=0 BINS="$BINS" bash tests/gpu/members_ab.sh
log done
