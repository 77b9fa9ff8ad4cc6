#!/bin/bash
# Session 12 call 4: members' reductions in two sums (per-member clipping norms, losses,
# biases' and LayerNorm's ∂ broadcast over [K, b, t, c]); bench members for GPT-2 and Mamba
# e128 (1 and 16 members), then Nsight Compute's kernel times for 16 Mamba members.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64 ICL_LAB_KERNEL_CACHE=/tmp/kc
BIN=/tmp/icl; gunzip -c gpu/s12/icl-lab.gz > $BIN && chmod +x $BIN
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
for cfg in gpt2-e128-l2-t82 mamba-e128-l4-t82; do
  timeout 100 $BIN bench members --device cuda --config $cfg --members 1,16 --steps 200 --json >> $OUT/members.txt 2>&1
done
grep -v '^{' $OUT/members.txt
timeout 150 ncu --clock-control none --metrics gpu__time_duration.sum --launch-skip 4000 --launch-count 1200 --csv $BIN bench members --device cuda --config mamba-e128-l4-t82 --members 16 --steps 30 > $OUT/ncu_mamba_16.csv 2> $OUT/ncu_err.txt; echo "ncu rc $?"
