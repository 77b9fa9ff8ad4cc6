#!/bin/bash
# Session 7 call 4: attention with late tiles first (check + time), the models matrix, and the
# PyTorch reference in the same lease (fp32, and TF32 for the GPT-2 configs).
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
export ICL_LAB_KERNEL_CACHE=/tmp/kc
gunzip -c gpu/s7/new.gz > /tmp/new && chmod +x /tmp/new
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
timeout 150 /tmp/new bench attention --check --json > $OUT/attn_check.txt 2>&1; echo "attn check rc $?"; grep -v '^{' $OUT/attn_check.txt | tail -11
timeout 60 /tmp/new bench attention --shape 64,82,128,8 --json > $OUT/attn_small.txt 2>&1; echo "attn small rc $?"; grep -v '^{' $OUT/attn_small.txt | tail -3
timeout 240 /tmp/new bench models --device cuda:0 --json > $OUT/models.txt 2>&1; echo "models rc $?"; grep -v '^{\|^\[' $OUT/models.txt | tail -8
pip install --no-deps --target /tmp/site gpu/whl/mambapy-1.2.0-py3-none-any.whl > /dev/null 2>&1
export PYTHONPATH=/tmp/site
timeout 240 python3 gpu/s7/torch_speed.py --steps 100 > $OUT/torch.jsonl 2> $OUT/torch.err; echo "torch rc $?"; cut -c1-160 $OUT/torch.jsonl
timeout 100 python3 gpu/s7/torch_speed.py --steps 100 --tf32 --only gpt2-e128-l2-t82,gpt2-e256-l12-t280 > $OUT/torch_tf32.jsonl 2>> $OUT/torch.err; echo "torch tf32 rc $?"; cut -c1-160 $OUT/torch_tf32.jsonl
