#!/bin/bash
# Session 7 call 2: fused attention check + timing, scan check of both layouts (host refactor
# d0c6915), models with the fused attention (new) against the tensor-op attention (old binary).
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
export ICL_LAB_KERNEL_CACHE=/tmp/kc
for b in old new; do gunzip -c gpu/s7/$b.gz > /tmp/$b && chmod +x /tmp/$b; done
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
timeout 150 /tmp/new bench attention --check --json > $OUT/attn_check.txt 2>&1; echo "attn check rc $?"; grep -v '^{' $OUT/attn_check.txt | tail -14
timeout 60 /tmp/new bench attention --shape 64,82,128,8 --json > $OUT/attn_small.txt 2>&1; echo "attn small rc $?"; grep -v '^{' $OUT/attn_small.txt | tail -4
M=gpt2-e128-l2-t82,gpt2-e256-l12-t280,mambaformer-e128-l4-t82
timeout 120 /tmp/new bench models --device cuda:0 --only $M --timeout 100 > $OUT/models_new.txt 2>&1; echo "models new rc $?"; tail -4 $OUT/models_new.txt
timeout 120 /tmp/old bench models --device cuda:0 --only $M --timeout 100 > $OUT/models_old.txt 2>&1; echo "models old rc $?"; tail -4 $OUT/models_old.txt
for k in state channel; do
  timeout 100 /tmp/new bench scan --check --kernel $k --against none --reps 5 --json > $OUT/scan_check_$k.txt 2>&1; echo "scan $k rc $?"; grep -v '^{' $OUT/scan_check_$k.txt | tail -11
done
