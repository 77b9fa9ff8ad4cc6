#!/usr/bin/env bash
# The two scan layouts (ICL_LAB_SCAN_KERNEL=channel|state) at the shapes training meets, for
# choosing one by size. The per-state backward is bound by instruction issue (its PTX has ~190
# instructions a lane and step, one lane per state entry, where the state's own arithmetic is
# ~15), so at large batch x width, where a thread per channel already fills the GPU (16 Mamba
# e128 members: 1,024 x 256 = 262,144 channels a layer), the per-channel kernels, with 16
# states a thread, may issue several times fewer instructions. Times the kernels alone
# (`bench scan --against none`) per layout and shape, then `bench members` Mamba e128 1 and 16
# under each layout. About 3 minutes once kernels are compiled (the shipped seed holds the
# layout each shipped shape takes by size: the other compiles on first use, ~1-2 s a shape).
# Carry the stripped, gzipped release binary (--features cuda) as $DIR/icl-lab.gz.
# Results: $OUT/check_<layout>.txt, $OUT/scan_<layout>.txt, $OUT/members_<layout>.txt,
# $OUT/log.txt. Each layout is first checked against the tensor-op scan (`--check`, six
# shapes, 1e-4): a binary of branch channel-lean (session 16's per-channel kernels, checked
# so far only on the CPU emulator, kernels/tests/emulated.rs) must pass it before its times
# count.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/s16}
BIN=/tmp/icl-layouts; gunzip -c $DIR/icl-lab.gz > $BIN && chmod +x $BIN
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} ICL_LAB_KERNEL_CACHE=${ICL_LAB_KERNEL_CACHE:-/tmp/kc-layouts}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/log.txt"
for layout in state channel; do
  timeout 120 $BIN bench scan --check --kernel $layout --shape 64,82,256,16 --against none --reps 3 > "$OUT/check_$layout.txt" 2>&1
  log "check $layout rc $?: $(grep '^check:' "$OUT/check_$layout.txt")"
done
# Lone Mamba e128 (64 prompts), 4 and 16 members, Mamba e256's width, the issue's shape.
SHAPES=${SHAPES:-"64,82,256,16 256,82,256,16 1024,82,256,16 64,280,512,16 64,1024,512,16"}
for layout in state channel; do
  for shape in $SHAPES; do
    timeout 60 $BIN bench scan --kernel $layout --shape $shape --against none --reps 10 > /tmp/scan.txt 2>&1
    log "scan $layout $shape rc $?: $(grep -E 'kernels|forward only' /tmp/scan.txt | tr -s ' ' | tr '\n' ';')"
    cat /tmp/scan.txt >> "$OUT/scan_$layout.txt"
  done
done
for layout in state channel; do
  ICL_LAB_SCAN_KERNEL=$layout timeout 120 $BIN bench members --device cuda --config mamba-e128-l4-t82 --members 1,16 --steps 300 > "$OUT/members_$layout.txt" 2>&1
  log "members $layout rc $?"; grep -E "^ +(1|16) " "$OUT/members_$layout.txt" | tee -a "$OUT/log.txt"
done
log done
