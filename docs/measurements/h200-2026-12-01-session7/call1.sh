#!/bin/bash
# Session 7 call 1: per-kernel GPU times (CubeCL's own profiler) of the scan and of three
# training configs, the generated CUDA source, and ptxas register counts of the scan kernels.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
export ICL_LAB_KERNEL_CACHE=/tmp/kc
gunzip -c gpu/s7/old.gz > /tmp/old && chmod +x /tmp/old
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
for k in state channel; do
  CUBECL_DEBUG_LOG=$OUT/scanprof_$k.log CUBECL_DEBUG_OPTION=profile timeout 60 /tmp/old bench scan --kernel $k --reps 3 --against none > $OUT/scan_$k.txt 2>&1
  echo "scan $k rc $?"; tail -3 $OUT/scan_$k.txt
done
for c in gpt2-e256-l12-t280 gpt2-e128-l2-t82 mamba-e128-l4-t82; do
  CUBECL_DEBUG_LOG=$OUT/prof_$c.log CUBECL_DEBUG_OPTION=profile timeout 80 /tmp/old bench models --device cuda:0 --only $c --steps 20 --timeout 75 > $OUT/models_$c.txt 2>&1
  echo "model $c rc $?"; tail -2 $OUT/models_$c.txt
done
PTXAS=$(ls /usr/local/cuda/bin/ptxas 2>/dev/null || find / -name ptxas -type f 2>/dev/null | head -1)
echo "ptxas: $PTXAS"
mkdir -p $OUT/ptx
python3 gpu/s7/ptx.py /tmp/kc $PTXAS $OUT/ptx > $OUT/ptxas.txt 2>&1; tail -40 $OUT/ptxas.txt
ls -la /tmp/kc | head; du -sh /tmp/kc $OUT/*.log
