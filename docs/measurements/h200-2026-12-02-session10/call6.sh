#!/bin/bash
# Session 10 call 6: e = the session's last code commit. Both checks, the whole models matrix,
# and PyTorch's matrix in the same lease.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
export ICL_LAB_KERNEL_CACHE=/tmp/kc
gunzip -c gpu/s10/e.gz > /tmp/e && chmod +x /tmp/e
timeout 60 /tmp/e bench scan --check --reps 10 --against none > $OUT/scan_e.txt 2>&1; echo "scan rc $?"; grep -E "check:|kernels|autodiff" $OUT/scan_e.txt
timeout 60 /tmp/e bench attention --check --reps 20 > $OUT/attention_e.txt 2>&1; echo "attention rc $?"; grep -E "check:|fused " $OUT/attention_e.txt
timeout 150 /tmp/e bench models --device cuda:0 > $OUT/models_e.txt 2>&1; echo "models rc $?"; tail -7 $OUT/models_e.txt
pip install --no-deps --target /tmp/site gpu/whl/mambapy-1.2.0-py3-none-any.whl > /dev/null 2>&1
export PYTHONPATH=/tmp/site
timeout 170 python3 tests/reference/torch_speed.py --steps 100 > $OUT/torch.txt 2> $OUT/torch_err.txt; echo "torch rc $?"; cut -c1-110 $OUT/torch.txt
