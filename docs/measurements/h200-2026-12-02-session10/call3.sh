#!/bin/bash
# Session 10 call 3: the scan check tables of a and b (call 2's file names held commas and
# did not come back).
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
export ICL_LAB_KERNEL_CACHE=/tmp/kc
for v in a b; do gunzip -c gpu/s10/$v.gz > /tmp/$v && chmod +x /tmp/$v; done
timeout 60 /tmp/a bench scan --check --reps 2 --against none > $OUT/check_a.txt 2>&1; echo "a rc $?"; head -12 $OUT/check_a.txt
timeout 60 /tmp/b bench scan --check --reps 2 --against none > $OUT/check_b_512_16.txt 2>&1; echo "b rc $?"; head -12 $OUT/check_b_512_16.txt
ICL_LAB_SCAN_TILE=1024,8 timeout 60 /tmp/b bench scan --check --reps 2 --against none > $OUT/check_b_1024_8.txt 2>&1; echo "b 1024,8 rc $?"; head -12 $OUT/check_b_1024_8.txt
