#!/bin/bash
# Session 9 call 6: f (= commit 62a1115's code) against PyTorch's GPT-2 configs in one lease.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
export ICL_LAB_KERNEL_CACHE=/tmp/kc
gunzip -c gpu/s9/f.gz > /tmp/f && chmod +x /tmp/f
for i in 1 2; do
  timeout 100 /tmp/f bench models --device cuda:0 --only gpt2-e128-l2-t82,gpt2-e256-l12-t280 > $OUT/models_f$i.txt 2>&1; echo "f rc $?"; tail -2 $OUT/models_f$i.txt
done
timeout 100 python3 tests/reference/torch_speed.py --steps 100 --only gpt2-e128-l2-t82,gpt2-e256-l12-t280 > $OUT/torch.jsonl 2> $OUT/torch.err; echo "torch rc $?"; cut -c1-120 $OUT/torch.jsonl
