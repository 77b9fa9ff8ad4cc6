#!/bin/bash
# Session 10 call 5: d = c + attention with `lanes` threads a row (ICL_LAB_ATTENTION_LANES,
# default 2). Checks for 1, 2 and 4 lanes, kernel times against a (one thread a row), then
# GPT-2 and MambaFormer training with a and d, and PyTorch's GPT-2 in the same lease.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
export ICL_LAB_KERNEL_CACHE=/tmp/kc
for v in a d; do gunzip -c gpu/s10/$v.gz > /tmp/$v && chmod +x /tmp/$v; done
timeout 60 /tmp/a bench attention --reps 20 > $OUT/attention_a.txt 2>&1; echo "a rc $?"; tail -3 $OUT/attention_a.txt
for lanes in 2 4 1; do
  ICL_LAB_ATTENTION_LANES=$lanes timeout 90 /tmp/d bench attention --check --reps 20 > $OUT/attention_d_lanes$lanes.txt 2>&1; echo "d lanes $lanes rc $?"; grep -vE "^\{" $OUT/attention_d_lanes$lanes.txt | tail -14
done
G=gpt2-e128-l2-t82,mambaformer-e128-l4-t82,gpt2-e256-l12-t280
timeout 100 /tmp/a bench models --device cuda:0 --only $G > $OUT/models_a.txt 2>&1; echo "models a rc $?"; tail -3 $OUT/models_a.txt
timeout 100 /tmp/d bench models --device cuda:0 --only $G > $OUT/models_d.txt 2>&1; echo "models d rc $?"; tail -3 $OUT/models_d.txt
ICL_LAB_ATTENTION_LANES=4 timeout 100 /tmp/d bench models --device cuda:0 --only $G > $OUT/models_d_lanes4.txt 2>&1; echo "models d lanes 4 rc $?"; tail -3 $OUT/models_d_lanes4.txt
timeout 100 python3 tests/reference/torch_speed.py --steps 100 --only gpt2-e128-l2-t82,gpt2-e256-l12-t280 > $OUT/torch.jsonl 2> $OUT/torch.err; echo "torch rc $?"; cut -c1-120 $OUT/torch.jsonl
