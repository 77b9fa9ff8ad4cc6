#!/usr/bin/env bash
# Session 20 call E: main's final binary (shipped seed 23d0758f7bf20416) on a fresh machine, nothing set.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
gunzip -c gpu/s20/final.gz > /tmp/icl-lab && chmod +x /tmp/icl-lab
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 200 /tmp/icl-lab bench models --steps 40 2>&1 | tail -9
ls ~/.cache/icl-lab/kernels/ 2>&1
