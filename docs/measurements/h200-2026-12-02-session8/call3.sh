#!/bin/bash
# Session 8 call 3: the fused optimiser step (check + time), the model matrix with it, the
# same configs with burn's optimiser (ICL_LAB_OPTIMIZER=tensor) and with the chosen matmul
# strategies (ICL_LAB_MATMUL=chosen), then the PyTorch reference, all in one lease.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
export ICL_LAB_KERNEL_CACHE=/tmp/kc
gunzip -c gpu/s8/icl-lab-c.gz > /tmp/c && chmod +x /tmp/c
timeout 120 /tmp/c bench adam --check --json > $OUT/adam_check.txt 2>&1; echo "adam rc $?"; grep -v '^{' $OUT/adam_check.txt | tail -8
timeout 200 /tmp/c bench models --device cuda:0 --json > $OUT/models.txt 2>&1; echo "models rc $?"; grep -v '^{\|^\[' $OUT/models.txt | tail -8
M=gpt2-e128-l2-t82,mamba-e128-l4-t82,gpt2-e256-l12-t280
ICL_LAB_OPTIMIZER=tensor timeout 120 /tmp/c bench models --device cuda:0 --only $M --steps 100 > $OUT/models_tensor_optim.txt 2>&1; echo "tensor optim rc $?"; tail -4 $OUT/models_tensor_optim.txt
ICL_LAB_MATMUL=chosen timeout 60 /tmp/c bench models --device cuda:0 --only gpt2-e256-l12-t280 --steps 100 > $OUT/models_chosen_matmul.txt 2>&1; echo "chosen rc $?"; tail -2 $OUT/models_chosen_matmul.txt
pip install --no-deps --target /tmp/site gpu/whl/mambapy-1.2.0-py3-none-any.whl > /dev/null 2>&1
export PYTHONPATH=/tmp/site
timeout 200 python3 tests/reference/torch_speed.py --steps 100 > $OUT/torch.jsonl 2> $OUT/torch.err; echo "torch rc $?"; cut -c1-160 $OUT/torch.jsonl
