#!/usr/bin/env bash
# Session 29, call C, on call B's machine (its binaries and caches in /tmp): the scan
# shape, base (main 48e5ed2's kernels) and new (the shipped commit) alternated three times.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64; for i in 1 2 3; do for bin in base new; do ICL_LAB_KERNEL_CACHE=/tmp/kc-$bin timeout 30 /tmp/$bin bench scan --reps 9 --against none 2>&1 | grep -E "kernels|forward only" | sed "s/^/$bin /"; done; done
