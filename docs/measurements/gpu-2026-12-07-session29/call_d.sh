#!/usr/bin/env bash
# Session 29, call D, on call B's machine: 1 and 16 Mamba e128 members, base and new alternated
# three times, then 1 and 16 GPT-2 e128 members of each.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64; for i in 1 2 3; do for bin in base new; do ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin timeout 40 /tmp/$bin bench members --device cuda --config mamba-e128-l4-t82 --members 1,16 --steps 100 2>&1 | grep -E "^ +(1|16) " | sed "s/^/mamba $bin /"; done; done; for bin in base new; do ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin timeout 40 /tmp/$bin bench members --device cuda --config gpt2-e128-l2-t82 --members 1,16 --steps 100 2>&1 | grep -E "^ +(1|16) " | sed "s/^/gpt2 $bin /"; done
