#!/bin/bash
# Session 12 call 3 (run on the warm machine of call 2, same binary): Nsight Compute's kernel
# times over 800 launches (about 2.3 steps) of 16 GPT-2 e128 members.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64 ICL_LAB_KERNEL_CACHE=/tmp/kc; BIN=/tmp/icl
timeout 150 ncu --clock-control none --metrics gpu__time_duration.sum --launch-skip 3000 --launch-count 800 --csv $BIN bench members --device cuda --config gpt2-e128-l2-t82 --members 16 --steps 40 > $OUT/ncu_gpt2_16.csv 2> $OUT/ncu_err.txt
