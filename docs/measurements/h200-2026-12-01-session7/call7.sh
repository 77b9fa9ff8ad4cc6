#!/bin/bash
# Session 7 call 7: the fused LayerNorm (check against f64, time), and GPT-2 / MambaFormer
# training with it against burn's LayerNorm (ICL_LAB_LAYER_NORM=tensor) in one lease.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
export ICL_LAB_KERNEL_CACHE=/tmp/kc
gunzip -c gpu/s7/ln.gz > /tmp/ln && chmod +x /tmp/ln
timeout 70 /tmp/ln bench layer-norm --check --json > $OUT/ln_check.txt 2>&1; echo "ln check rc $?"; grep -v '^{' $OUT/ln_check.txt | tail -9
M=gpt2-e128-l2-t82,mambaformer-e128-l4-t82,gpt2-e256-l12-t280
timeout 65 /tmp/ln bench models --device cuda:0 --only $M --steps 60 --timeout 60 > $OUT/models_fused.txt 2>&1; echo "fused rc $?"; tail -4 $OUT/models_fused.txt
ICL_LAB_LAYER_NORM=tensor timeout 65 /tmp/ln bench models --device cuda:0 --only $M --steps 60 --timeout 60 > $OUT/models_burn.txt 2>&1; echo "burn rc $?"; tail -4 $OUT/models_burn.txt
