set -x
cd "$(dirname "$0")" && gunzip -kf icl-lab-a.gz && chmod +x icl-lab-a
export LD_LIBRARY_PATH=/usr/local/cuda/lib64 ICL_LAB_KERNEL_CACHE=/tmp/kc
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv > $OUT/gpu.txt
./icl-lab-a bench matmul --check --reps 10 --json > $OUT/matmul-e256.txt 2>&1
./icl-lab-a bench matmul --reps 10 --shape 64,82,128 --json > $OUT/matmul-e128.txt 2>&1
tail -25 $OUT/matmul-e256.txt | cut -c1-200
