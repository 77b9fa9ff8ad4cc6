#!/bin/bash
# Session 8 call 4: the fused optimiser's per-step check (states passed between the forms),
# the model matrix with burn's matmuls and with the chosen strategies (ICL_LAB_MATMUL=chosen)
# in one lease, and `bench slots` with the fused optimiser.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
export ICL_LAB_KERNEL_CACHE=/tmp/kc
gunzip -c gpu/s8/icl-lab-d.gz > /tmp/d && chmod +x /tmp/d
timeout 120 /tmp/d bench adam --check --json > $OUT/adam_check.txt 2>&1; echo "adam rc $?"; grep -v '^{' $OUT/adam_check.txt | tail -8
timeout 200 /tmp/d bench models --device cuda:0 --json > $OUT/models.txt 2>&1; echo "models rc $?"; grep -v '^{\|^\[' $OUT/models.txt | tail -7
ICL_LAB_MATMUL=chosen timeout 200 /tmp/d bench models --device cuda:0 --json > $OUT/models_chosen.txt 2>&1; echo "chosen rc $?"; grep -v '^{\|^\[' $OUT/models_chosen.txt | tail -7
timeout 150 /tmp/d bench slots --device cuda:0 --runs 1,4,8,16 --json > $OUT/slots.txt 2>&1; echo "slots rc $?"; grep -v '^{\|^\[' $OUT/slots.txt | tail -8
