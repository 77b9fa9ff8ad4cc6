#!/bin/bash
# Session 9 call 5: e = commit 7034537 (the --check tables through one CheckTable): its three
# checks print as before. f = e with attention cubes of 32 rows instead of 64: its attention
# check, attention times e against f, the GPT-2 configs e, f, e in one lease.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
export ICL_LAB_KERNEL_CACHE=/tmp/kc
for v in e f; do gunzip -c gpu/s9/$v.gz > /tmp/$v && chmod +x /tmp/$v; done
timeout 100 /tmp/e bench attention --check --reps 3 --json > $OUT/e_attention_check.txt 2>&1; echo "e attn rc $?"; grep -v '^{' $OUT/e_attention_check.txt | head -10
timeout 100 /tmp/e bench layer-norm --check --reps 3 --json > $OUT/e_norm_check.txt 2>&1; echo "e norm rc $?"; grep -v '^{' $OUT/e_norm_check.txt | head -9
timeout 120 /tmp/e bench matmul --check --strategies auto --reps 3 --json > $OUT/e_matmul_check.txt 2>&1; echo "e matmul rc $?"; sed -n '/linear layers/,/^check/p' $OUT/e_matmul_check.txt
timeout 100 /tmp/f bench attention --check > $OUT/f_attention_check.txt 2>&1; echo "f attn rc $?"; tail -11 $OUT/f_attention_check.txt
for v in e f e f; do for s in 64,280,256,8 64,82,128,8; do
  timeout 60 /tmp/$v bench attention --shape $s > /tmp/t.txt 2>&1; echo "$v $s: $(grep fused /tmp/t.txt | head -1)"; tail -3 /tmp/t.txt >> $OUT/attention_times.txt
done; done
i=0; for v in e f e; do i=$((i+1))
  timeout 100 /tmp/$v bench models --device cuda:0 --only gpt2-e128-l2-t82,gpt2-e256-l12-t280 > $OUT/models_$i$v.txt 2>&1; echo "$v rc $?"; tail -2 $OUT/models_$i$v.txt
done
