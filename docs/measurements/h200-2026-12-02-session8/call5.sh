#!/bin/bash
# Session 8 call 5: the model matrix with the chosen matmul strategies and the fused optimiser
# (call 4's binary; ICL_LAB_MATMUL=chosen is the default from the next commit on), then the
# PyTorch reference in the same lease.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
export ICL_LAB_KERNEL_CACHE=/tmp/kc
gunzip -c gpu/s8/icl-lab-d.gz > /tmp/d && chmod +x /tmp/d
ICL_LAB_MATMUL=chosen timeout 200 /tmp/d bench models --device cuda:0 --json > $OUT/models_chosen.txt 2>&1; echo "chosen rc $?"; grep -v '^{\|^\[' $OUT/models_chosen.txt | tail -7
pip install --no-deps --target /tmp/site gpu/whl/mambapy-1.2.0-py3-none-any.whl > /dev/null 2>&1
export PYTHONPATH=/tmp/site
timeout 200 python3 tests/reference/torch_speed.py --steps 100 > $OUT/torch.jsonl 2> $OUT/torch.err; echo "torch rc $?"; cut -c1-130 $OUT/torch.jsonl
