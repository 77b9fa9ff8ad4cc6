#!/bin/bash
# Session 10 call 4: c = b with the forward's one-step-ahead loads rewritten (b's forward was
# wrong: call 3). Checks and timings of the tiles, then Mamba training with a and c.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
export ICL_LAB_KERNEL_CACHE=/tmp/kc
for v in a c; do gunzip -c gpu/s10/$v.gz > /tmp/$v && chmod +x /tmp/$v; done
for tile in 512_16 1024_8 256_8; do
  ICL_LAB_SCAN_TILE=${tile/_/,} timeout 90 /tmp/c bench scan --check --reps 10 --against none > $OUT/scan_c_$tile.txt 2>&1; echo "c $tile rc $?"; grep -E "\]  |check:|kernels|autodiff|forward only" $OUT/scan_c_$tile.txt
done
M=mamba-e128-l4-t82,mambaformer-e128-l4-t82,mamba-e256-l24-t280,mamba-e128-l4-t1024
timeout 150 /tmp/a bench models --device cuda:0 --only $M > $OUT/models_a.txt 2>&1; echo "models a rc $?"; tail -4 $OUT/models_a.txt
ICL_LAB_SCAN_TILE=1024,8 timeout 150 /tmp/c bench models --device cuda:0 --only $M > $OUT/models_c_1024_8.txt 2>&1; echo "models c 1024,8 rc $?"; tail -4 $OUT/models_c_1024_8.txt
timeout 150 /tmp/c bench models --device cuda:0 --only $M > $OUT/models_c_512_16.txt 2>&1; echo "models c 512,16 rc $?"; tail -4 $OUT/models_c_512_16.txt
