#!/bin/bash
# Session 8 call 2: the models' linear layers with per-matmul strategies (check against f64),
# then training A/B against burn's matmuls (ICL_LAB_MATMUL=burn) in one lease.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
export ICL_LAB_KERNEL_CACHE=/tmp/kc
gunzip -c gpu/s8/icl-lab-b.gz > /tmp/b && chmod +x /tmp/b
timeout 150 /tmp/b bench matmul --check --strategies auto,simple-tma-cmma,specialized-tma-cmma,simple-rows-mma --json > $OUT/matmul_check.txt 2>&1; echo "check rc $?"; grep -v '^{' $OUT/matmul_check.txt | sed -n '/linear layers/,$p'
M=gpt2-e128-l2-t82,gpt2-e256-l12-t280,mamba-e256-l24-t280,mambaformer-e128-l4-t82
timeout 170 /tmp/b bench models --device cuda:0 --only $M --steps 60 --timeout 90 > $OUT/models_chosen.txt 2>&1; echo "chosen rc $?"; tail -5 $OUT/models_chosen.txt
ICL_LAB_MATMUL=burn timeout 170 /tmp/b bench models --device cuda:0 --only $M --steps 60 --timeout 90 > $OUT/models_burn.txt 2>&1; echo "burn rc $?"; tail -5 $OUT/models_burn.txt
