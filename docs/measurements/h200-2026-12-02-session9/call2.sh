#!/bin/bash
# Session 9 call 2: b = our column sums for linear ∂b/∂w and LayerNorm ∂γ/∂β. Checks, then the
# models matrix a (0af2cd5) against b in one lease, then a profile of b at GPT-2 e256.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
export ICL_LAB_KERNEL_CACHE=/tmp/kc
for v in a b; do gunzip -c gpu/s9/$v.gz > /tmp/$v && chmod +x /tmp/$v; done
timeout 120 /tmp/b bench matmul --check --strategies auto --reps 3 > $OUT/b_matmul_check.txt 2>&1; echo "matmul check rc $?"; sed -n '/linear layers/,$p' $OUT/b_matmul_check.txt | head -20
timeout 90 /tmp/b bench layer-norm --check > $OUT/b_norm_check.txt 2>&1; echo "norm check rc $?"; tail -12 $OUT/b_norm_check.txt
timeout 150 /tmp/b bench models --device cuda:0 > $OUT/models_b1.txt 2>&1; echo "b rc $?"; tail -7 $OUT/models_b1.txt
timeout 150 /tmp/a bench models --device cuda:0 > $OUT/models_a.txt 2>&1; echo "a rc $?"; tail -7 $OUT/models_a.txt
timeout 150 /tmp/b bench models --device cuda:0 > $OUT/models_b2.txt 2>&1; echo "b rc $?"; tail -7 $OUT/models_b2.txt
c=gpt2-e256-l12-t280
CUBECL_DEBUG_LOG=/tmp/prof_$c.log CUBECL_DEBUG_OPTION=profile timeout 80 /tmp/b bench models --device cuda:0 --only $c --steps 20 --timeout 75 > /dev/null 2>&1
python3 tests/gpu/kernel_profile.py /tmp/prof_$c.log --steps 20 --top 30 > $OUT/b_profile-$c.txt 2>&1; head -24 $OUT/b_profile-$c.txt
