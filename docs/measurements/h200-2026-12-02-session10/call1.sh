#!/bin/bash
# Session 10 call 1 (binary a = dedd796 + ICL_LAB_CUDA_WAIT): Nsight Compute on the scan and
# attention kernels and on a GPT-2 e256 step (per-kernel times without CubeCL's profiler);
# bench slots with the driver's default wait against blocking waits.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
export ICL_LAB_KERNEL_CACHE=/tmp/kc
gunzip -c gpu/s10/a.gz > /tmp/a && chmod +x /tmp/a
NCU="ncu --clock-control none"
# Warm the kernel cache, and get every kernel's name and time at the scan's shape.
timeout 60 $NCU --metrics gpu__time_duration.sum --csv -c 40 /tmp/a bench scan --reps 1 --against none > $OUT/scan_names.csv 2> $OUT/scan_names.err; echo "names rc $?"
cut -d, -f5,6,12- $OUT/scan_names.csv | grep -v '^"ID' | awk -F'","' '{print $2}' | sort | uniq -c | head -20
SECT="--section SpeedOfLight --section LaunchStats --section Occupancy --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis --section SourceCounters"
timeout 120 $NCU $SECT -k regex:scan -c 3 /tmp/a bench scan --reps 1 --against none > $OUT/scan_ncu.txt 2>&1; echo "scan ncu rc $?"
grep -E "^  [a-z_]+.*\(|Duration|Registers Per|Achieved Occupancy|Theoretical Occupancy|Stall|Issued Ipc|Local Memory|Warp Cycles Per Issued" $OUT/scan_ncu.txt | head -60
timeout 120 $NCU $SECT -k regex:attention -c 4 /tmp/a bench attention --reps 1 > $OUT/attention_ncu.txt 2>&1; echo "attention ncu rc $?"
grep -E "^  [a-z_]+.*\(|Duration|Registers Per|Achieved Occupancy|Warp Cycles Per Issued" $OUT/attention_ncu.txt | head -30
timeout 110 $NCU --metrics gpu__time_duration.sum --csv -c 1800 /tmp/a bench models --device cuda:0 --only gpt2-e256-l12-t280 --steps 4 > $OUT/gpt2_e256_kernels.csv 2> $OUT/gpt2_e256_kernels.err; echo "gpt2 kernels rc $?"; wc -l $OUT/gpt2_e256_kernels.csv
for w in auto block; do
  ICL_LAB_CUDA_WAIT=$w timeout 90 /tmp/a bench slots --device cuda:0 --runs 1,16 --json > $OUT/slots_$w.txt 2>&1; echo "slots $w rc $?"; grep -v '^{\|^\[' $OUT/slots_$w.txt | tail -5
done
ICL_LAB_CUDA_WAIT=block timeout 100 /tmp/a bench models --device cuda:0 --only gpt2-e128-l2-t82,mamba-e128-l4-t82 > $OUT/models_block.txt 2>&1; echo "models block rc $?"; tail -3 $OUT/models_block.txt
ICL_LAB_CUDA_WAIT=auto timeout 100 /tmp/a bench models --device cuda:0 --only gpt2-e128-l2-t82,mamba-e128-l4-t82 > $OUT/models_auto.txt 2>&1; echo "models auto rc $?"; tail -3 $OUT/models_auto.txt
