#!/bin/bash
# Session 9 call 4: d = b (commit 410f989: column sums) + the optimiser's kernels grouped
# (sums of squares 4 gradients a launch, updates 2 parameters a launch). The optimiser check
# and step time (b, d), the models matrix d, b, d in one lease, PyTorch in the same lease,
# bench slots with d.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
export ICL_LAB_KERNEL_CACHE=/tmp/kc
for v in b d; do gunzip -c gpu/s9/$v.gz > /tmp/$v && chmod +x /tmp/$v; done
timeout 120 /tmp/d bench adam --check --json > $OUT/d_adam_check.txt 2>&1; echo "adam check rc $?"; grep -v '^{' $OUT/d_adam_check.txt | tail -9
timeout 60 /tmp/b bench adam > $OUT/b_adam.txt 2>&1; echo "b adam rc $?"; tail -2 $OUT/b_adam.txt
timeout 150 /tmp/d bench models --device cuda:0 --json > $OUT/models_d1.txt 2>&1; echo "d rc $?"; grep -v '^{\|^\[' $OUT/models_d1.txt | tail -7
timeout 150 /tmp/b bench models --device cuda:0 --json > $OUT/models_b.txt 2>&1; echo "b rc $?"; grep -v '^{\|^\[' $OUT/models_b.txt | tail -7
timeout 150 /tmp/d bench models --device cuda:0 --json > $OUT/models_d2.txt 2>&1; echo "d rc $?"; grep -v '^{\|^\[' $OUT/models_d2.txt | tail -7
pip install --no-deps --target /tmp/site gpu/whl/mambapy-1.2.0-py3-none-any.whl > /dev/null 2>&1
export PYTHONPATH=/tmp/site
timeout 200 python3 tests/reference/torch_speed.py --steps 100 > $OUT/torch.jsonl 2> $OUT/torch.err; echo "torch rc $?"; cut -c1-130 $OUT/torch.jsonl
timeout 150 /tmp/d bench slots --device cuda:0 --runs 1,4,8,16 --json > $OUT/d_slots.txt 2>&1; echo "slots rc $?"; grep -v '^{\|^\[' $OUT/d_slots.txt | tail -8
