#!/usr/bin/env bash
# Session 19, command A: branch attention-ilp (= launch-groups + the attention kernels'
# unrolled key tiles). Its checks of every kernel the two branches change, the attention's
# time (main against it), then members 1 and 16 for GPT-2 e128 and Mamba e128 (main, ilp).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s19}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
for n in base groups ilp; do gunzip -c $DIR/$n.gz > /tmp/ab-$n && chmod +x /tmp/ab-$n; done
ok=1
for check in attention adam layer-norm conv; do
  ICL_LAB_KERNEL_CACHE=/tmp/kc-ab-ilp timeout 100 /tmp/ab-ilp bench $check --check --reps 3 > "$OUT/check_$check.txt" 2>&1
  log "ilp check $check rc $?"; grep -E "^check|median" "$OUT/check_$check.txt" | tee -a "$OUT/log.txt"
  grep -q "^check: all within" "$OUT/check_$check.txt" || ok=0
done
echo $ok > "$OUT/ilp_ok.txt"
for n in base ilp base ilp; do
  for shape in 64,280,256,8 1024,82,128,8; do
    ICL_LAB_KERNEL_CACHE=/tmp/kc-ab-$n timeout 60 /tmp/ab-$n bench attention --reps 20 --shape $shape >> "$OUT/attention_$n.txt" 2>&1
    log "attention $n $shape rc $?"; tail -3 "$OUT/attention_$n.txt" | tee -a "$OUT/log.txt"
  done
done
[ $ok = 1 ] || { log "an ilp check failed: members with groups instead"; }
B2=ilp; [ $ok = 1 ] || B2=groups
DIR=$DIR CHECKS="" PHASES=0 BINS="base $B2" bash tests/gpu/members_ab.sh
log done
