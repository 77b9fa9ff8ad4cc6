#!/bin/bash
# Session 9 call 1: per-kernel profiles of GPT-2 e256 and e128 with the committed code (0af2cd5).
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
export ICL_LAB_KERNEL_CACHE=/tmp/kc
gunzip -c gpu/s9/a.gz > /tmp/a && chmod +x /tmp/a
which perf py-spy nsys 2>&1 | head -3
timeout 100 /tmp/a bench models --device cuda:0 --only gpt2-e128-l2-t82,gpt2-e256-l12-t280 > $OUT/models_a.txt 2>&1; echo "a rc $?"; tail -4 $OUT/models_a.txt
for c in gpt2-e256-l12-t280 gpt2-e128-l2-t82; do
  CUBECL_DEBUG_LOG=/tmp/prof_$c.log CUBECL_DEBUG_OPTION=profile timeout 80 /tmp/a bench models --device cuda:0 --only $c --steps 20 --timeout 75 > /dev/null 2>&1
  python3 tests/gpu/kernel_profile.py /tmp/prof_$c.log --steps 20 --top 30 > $OUT/profile-$c.txt 2>&1; head -24 $OUT/profile-$c.txt
  grep -c . /tmp/prof_$c.log
done
