#!/bin/bash
# Session 7 call 5: per-state scan cubes of 256 threads against 512 (check + time); `bench slots` with steady rates (1, 4, 8, 16 GPT-2 e128 runs), and the
# registers of the fused kernels (cuobjdump on the cubins in CubeCL's kernel cache).
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
export ICL_LAB_KERNEL_CACHE=/tmp/kc
for b in new b256; do gunzip -c gpu/s7/$b.gz > /tmp/$b && chmod +x /tmp/$b; done
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader; nproc
timeout 60 /tmp/new bench scan --kernel state --against none --reps 3 > $OUT/scan.txt 2>&1; tail -2 $OUT/scan.txt
timeout 60 /tmp/new bench attention --reps 3 > $OUT/attn.txt 2>&1; tail -2 $OUT/attn.txt
timeout 100 /tmp/b256 bench scan --check --kernel state --against none --json > $OUT/scan_b256.txt 2>&1; echo "b256 rc $?"; grep -v '^{' $OUT/scan_b256.txt | tail -11
TOOL=$(ls /usr/local/cuda/bin/cuobjdump 2>/dev/null || find / -name cuobjdump -type f 2>/dev/null | head -1); echo "cuobjdump: $TOOL"
mkdir -p /tmp/cubins; python3 gpu/s7/res.py /tmp/kc $TOOL /tmp/cubins > $OUT/registers.txt 2>&1; grep -i -B1 "REG\|cubins" $OUT/registers.txt | head -30
timeout 330 /tmp/new bench slots --device cuda:0 --runs 1,4,8,16 --json > $OUT/slots.txt 2>&1; echo "slots rc $?"; grep -v '^{' $OUT/slots.txt | tail -8
