#!/bin/bash
# Session 7 call 3: attention check against f64, unchecked launches (scan + attention) checked
# and timed against bounds-checked ones, the models matrix, a per-kernel profile of GPT-2 e256.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
export ICL_LAB_KERNEL_CACHE=/tmp/kc
gunzip -c gpu/s7/new.gz > /tmp/new && chmod +x /tmp/new
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
timeout 150 /tmp/new bench attention --check --json > $OUT/attn_check.txt 2>&1; echo "attn check rc $?"; grep -v '^{' $OUT/attn_check.txt | tail -12
ICL_LAB_KERNEL_CHECKS=1 timeout 60 /tmp/new bench attention --reps 10 > $OUT/attn_checked.txt 2>&1; echo "attn bounds-checked rc $?"; tail -3 $OUT/attn_checked.txt
timeout 60 /tmp/new bench attention --shape 64,82,128,8 --json > $OUT/attn_small.txt 2>&1; echo "attn small rc $?"; grep -v '^{' $OUT/attn_small.txt | tail -3
timeout 100 /tmp/new bench scan --check --kernel state --against none --json > $OUT/scan_state.txt 2>&1; echo "scan state rc $?"; grep -v '^{' $OUT/scan_state.txt | tail -11
timeout 100 /tmp/new bench scan --check --kernel channel --against none --reps 5 --json > $OUT/scan_channel.txt 2>&1; echo "scan channel rc $?"; grep -v '^{' $OUT/scan_channel.txt | tail -4
ICL_LAB_KERNEL_CHECKS=1 timeout 60 /tmp/new bench scan --kernel state --against none > $OUT/scan_state_checked.txt 2>&1; echo "scan bounds-checked rc $?"; tail -3 $OUT/scan_state_checked.txt
timeout 240 /tmp/new bench models --device cuda:0 --json > $OUT/models.txt 2>&1; echo "models rc $?"; grep -v '^{\|^\[' $OUT/models.txt | tail -8
CUBECL_DEBUG_LOG=/tmp/prof.log CUBECL_DEBUG_OPTION=profile timeout 80 /tmp/new bench models --device cuda:0 --only gpt2-e256-l12-t280 --steps 20 --timeout 75 > /dev/null 2>&1
grep '^| ' /tmp/prof.log > $OUT/prof_gpt2_e256.txt; wc -l $OUT/prof_gpt2_e256.txt
