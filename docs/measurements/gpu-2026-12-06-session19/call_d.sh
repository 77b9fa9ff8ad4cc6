#!/usr/bin/env bash
# Session 19, call D, right after call C on the same machine (/tmp/icl and /tmp/pyl from C):
# GPT-2 e128 and e256, ours then PyTorch TF32, twice, 200 steps each.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64; mkdir -p $OUT; for i in 1 2; do timeout 60 /tmp/icl bench models --only gpt2-e256-l12-t280,gpt2-e128-l2-t82 --steps 200 2>&1 | grep -E "^gpt2" | tee -a $OUT/r.txt; PYTHONPATH=/tmp/pyl timeout 60 python3 tests/reference/torch_speed.py --steps 200 --tf32 --only gpt2-e128-l2-t82,gpt2-e256-l12-t280 2>/dev/null | cut -c1-120 | tee -a $OUT/r.txt; done
