#!/bin/bash
# Session 12 call 5 (the session's last device minutes; call 4 was never started): the binary
# of 05a4845 plus the fused Adam step for members (each member clipped by its own norm first),
# bench members for GPT-2 and Mamba e128, 1 and 16 members, 120 steps.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64 ICL_LAB_KERNEL_CACHE=/tmp/kc; BIN=/tmp/icl; gunzip -c gpu/s12/icl-lab.gz > $BIN && chmod +x $BIN; nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt; for cfg in gpt2-e128-l2-t82 mamba-e128-l4-t82; do timeout 70 $BIN bench members --device cuda --config $cfg --members 1,16 --steps 120 --json >> $OUT/members.txt 2>&1; done; grep -v '^{' $OUT/members.txt
