#!/bin/bash
# Session 12 call 2: stacked linear layers on the chosen matmul kernels (one matmul batched by
# member) against the tensor-op stacked path (ICL_LAB_MATMUL=burn), their check, and where a
# step of 16 members spends its time (Nsight Systems' kernel summary where the machine has it).
export LD_LIBRARY_PATH=/usr/local/cuda/lib64 ICL_LAB_KERNEL_CACHE=/tmp/kc
BIN=/tmp/icl; gunzip -c gpu/s12/icl-lab.gz > $BIN && chmod +x $BIN
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
timeout 90 $BIN bench matmul --check --strategies auto --reps 3 --shape 16,82,128 > $OUT/matmul_check.txt 2>&1; echo "matmul check rc $?"
grep -A12 "linear layers" $OUT/matmul_check.txt
for cfg in gpt2-e128-l2-t82 mamba-e128-l4-t82; do
  timeout 100 $BIN bench members --device cuda --config $cfg --members 1,16 --steps 200 --json >> $OUT/members.txt 2>&1
  ICL_LAB_MATMUL=burn timeout 100 $BIN bench members --device cuda --config $cfg --members 16 --steps 200 --json >> $OUT/members.txt 2>&1
done
grep -v '^{' $OUT/members.txt
NSYS=$(command -v nsys || ls /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys 2>/dev/null | head -1)
echo "nsys: ${NSYS:-none}"
if [ -n "$NSYS" ]; then
  for cfg in gpt2-e128-l2-t82 mamba-e128-l4-t82; do
    name=${cfg%%-*}_16
    timeout 100 $NSYS profile -t cuda --stats=false -o /tmp/$name $BIN bench members --device cuda --config $cfg --members 16 --steps 100 >> $OUT/nsys_runs.txt 2>&1
    timeout 60 $NSYS stats -r cuda_gpu_kern_sum -f csv -o $OUT/$name /tmp/$name.nsys-rep >> $OUT/nsys_runs.txt 2>&1
    head -15 $OUT/${name}_cuda_gpu_kern_sum.csv | cut -c1-180
  done
fi
ls $OUT
