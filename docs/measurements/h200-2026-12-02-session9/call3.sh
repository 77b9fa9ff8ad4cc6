#!/bin/bash
# Session 9 call 3: c = b + attention tiles as 4-vectors read into registers a row at a time.
# Attention check and times (b vs c), models matrix b vs c vs b, PyTorch's GPT-2 in the same
# lease, and a profile of c at GPT-2 e256.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
export ICL_LAB_KERNEL_CACHE=/tmp/kc
for v in b c; do gunzip -c gpu/s9/$v.gz > /tmp/$v && chmod +x /tmp/$v; done
timeout 150 /tmp/c bench attention --check > $OUT/c_attention_check.txt 2>&1; echo "attn check rc $?"; tail -14 $OUT/c_attention_check.txt
for v in b c; do for s in 64,280,256,8 64,82,128,8; do
  timeout 60 /tmp/$v bench attention --shape $s > /tmp/t.txt 2>&1; echo "$v $s: $(tail -1 /tmp/t.txt)"; tail -3 /tmp/t.txt >> $OUT/attention_times.txt
done; done
timeout 150 /tmp/c bench models --device cuda:0 > $OUT/models_c1.txt 2>&1; echo "c rc $?"; tail -7 $OUT/models_c1.txt
timeout 150 /tmp/b bench models --device cuda:0 > $OUT/models_b.txt 2>&1; echo "b rc $?"; tail -7 $OUT/models_b.txt
timeout 150 /tmp/c bench models --device cuda:0 > $OUT/models_c2.txt 2>&1; echo "c rc $?"; tail -7 $OUT/models_c2.txt
timeout 120 python3 tests/reference/torch_speed.py --steps 100 --only gpt2-e128-l2-t82,gpt2-e256-l12-t280 > $OUT/torch.jsonl 2> $OUT/torch.err; echo "torch rc $?"; cat $OUT/torch.jsonl | cut -c1-200
c=gpt2-e256-l12-t280
CUBECL_DEBUG_LOG=/tmp/prof_$c.log CUBECL_DEBUG_OPTION=profile timeout 80 /tmp/c bench models --device cuda:0 --only $c --steps 20 --timeout 75 > /dev/null 2>&1
python3 tests/gpu/kernel_profile.py /tmp/prof_$c.log --steps 20 --top 30 > $OUT/c_profile-$c.txt 2>&1; head -14 $OUT/c_profile-$c.txt
