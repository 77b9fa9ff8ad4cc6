#!/bin/bash
# Session 6: the per-state scan kernels on the H200 (check, timing against the per-channel ones, models).
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
gunzip -c gpu/bin/icl-lab.gz > /tmp/icl && chmod +x /tmp/icl
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
timeout 170 /tmp/icl bench scan --check --kernel state --json > $OUT/scan_state.txt 2>&1; rc=$?
echo "state rc $rc"; grep -v '^{' $OUT/scan_state.txt | tail -22
timeout 90 /tmp/icl bench scan --kernel channel --json > $OUT/scan_channel.txt 2>&1
echo "channel rc $?"; grep -v '^{' $OUT/scan_channel.txt | tail -6
if [ $rc = 0 ]; then
  for k in state channel; do
    ICL_LAB_SCAN_KERNEL=$k timeout 100 /tmp/icl bench models --device cuda:0 --only mamba-e128-l4-t82,mambaformer-e128-l4-t82,mamba-e256-l24-t280,mamba-e128-l4-t1024 > $OUT/models_$k.txt 2>&1
    echo "models $k rc $?"; cat $OUT/models_$k.txt | tail -6
  done
fi
