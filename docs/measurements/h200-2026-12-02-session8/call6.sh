#!/bin/bash
# Session 8 call 6: linear layers with the bias folded into the op (one reduction for its
# gradient): the check, the model matrix against call 4's binary (d, ICL_LAB_MATMUL=chosen) in
# the same lease, and per-kernel profiles of GPT-2 e256 and e128 with the new binary.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
export ICL_LAB_KERNEL_CACHE=/tmp/kc
gunzip -c gpu/s8/icl-lab-d.gz > /tmp/d && chmod +x /tmp/d
gunzip -c gpu/s8/icl-lab-e.gz > /tmp/e && chmod +x /tmp/e
timeout 120 /tmp/e bench matmul --check --strategies auto --reps 3 > $OUT/linear_check.txt 2>&1; echo "check rc $?"; sed -n '/linear layers/,/^check/p' $OUT/linear_check.txt
timeout 150 /tmp/e bench models --device cuda:0 > $OUT/models_e.txt 2>&1; echo "e rc $?"; tail -7 $OUT/models_e.txt
ICL_LAB_MATMUL=chosen timeout 150 /tmp/d bench models --device cuda:0 > $OUT/models_d.txt 2>&1; echo "d rc $?"; tail -7 $OUT/models_d.txt
for c in gpt2-e256-l12-t280 gpt2-e128-l2-t82; do
  CUBECL_DEBUG_LOG=/tmp/prof_$c.log CUBECL_DEBUG_OPTION=profile timeout 80 /tmp/e bench models --device cuda:0 --only $c --steps 20 --timeout 75 > /dev/null 2>&1
  python3 tests/gpu/kernel_profile.py /tmp/prof_$c.log --steps 20 > $OUT/profile-$c.txt 2>&1; head -16 $OUT/profile-$c.txt
done
