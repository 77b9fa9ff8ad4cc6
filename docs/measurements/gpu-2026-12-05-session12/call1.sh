#!/bin/bash
# Session 12 call 1: the card, then tests/gpu/members.sh (several seeds as one stacked model:
# fused Adam check, bench members for GPT-2 and Mamba e128, bench slots --members 16).
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $OUT/gpu.txt; cat $OUT/gpu.txt
DIR=gpu/s12 bash tests/gpu/members.sh
tail -40 $OUT/members.txt | cut -c1-150
