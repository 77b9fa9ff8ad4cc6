#!/bin/bash
# Session 10 call 2: binary b = per-state scan kernels loading each step's inputs one step
# ahead, tiles chosen by ICL_LAB_SCAN_TILE (block,chunk), bench scan timing the kernels alone;
# a = call 1's binary (the kernels before). Checks and timings of the tiles, Mamba training
# with a and b, and bench slots under MPS.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
export ICL_LAB_KERNEL_CACHE=/tmp/kc
for v in a b; do gunzip -c gpu/s10/$v.gz > /tmp/$v && chmod +x /tmp/$v; done
timeout 60 /tmp/a bench scan --reps 10 --against none > $OUT/scan_a.txt 2>&1; echo "a rc $?"; tail -3 $OUT/scan_a.txt
for tile in 512,16 1024,8 512,8 256,16 256,8; do
  ICL_LAB_SCAN_TILE=$tile timeout 90 /tmp/b bench scan --check --reps 10 --against none > $OUT/scan_b_$tile.txt 2>&1; echo "b $tile rc $?"; grep -E "check:|kernels|autodiff|forward only" $OUT/scan_b_$tile.txt
done
M=mamba-e128-l4-t82,mamba-e256-l24-t280,mamba-e128-l4-t1024
timeout 120 /tmp/a bench models --device cuda:0 --only $M > $OUT/models_a.txt 2>&1; echo "models a rc $?"; tail -3 $OUT/models_a.txt
timeout 120 /tmp/b bench models --device cuda:0 --only $M > $OUT/models_b_512_16.txt 2>&1; echo "models b rc $?"; tail -3 $OUT/models_b_512_16.txt
ICL_LAB_SCAN_TILE=1024,8 timeout 120 /tmp/b bench models --device cuda:0 --only $M > $OUT/models_b_1024_8.txt 2>&1; echo "models b 1024,8 rc $?"; tail -3 $OUT/models_b_1024_8.txt
which nvidia-cuda-mps-control nvidia-smi; ls /usr/bin | grep -i mps
if nvidia-cuda-mps-control -d; then
  sleep 1
  timeout 100 /tmp/b bench slots --device cuda:0 --runs 1,16 > $OUT/slots_mps.txt 2>&1; echo "slots mps rc $?"; tail -4 $OUT/slots_mps.txt
  echo quit | nvidia-cuda-mps-control
fi
timeout 60 ncu --clock-control none --section LaunchStats --section Occupancy --section WarpStateStats --section SpeedOfLight -k regex:scan -c 2 env ICL_LAB_SCAN_TILE=1024,8 /tmp/b bench scan --reps 1 --against none > $OUT/scan_ncu_1024_8.txt 2>&1; echo "ncu rc $?"
grep -E "^  [a-z_]+.*\(|Duration|Registers Per|Achieved Occupancy|Warp Cycles Per Issued" $OUT/scan_ncu_1024_8.txt
