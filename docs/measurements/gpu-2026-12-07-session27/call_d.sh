#!/usr/bin/env bash
# Session 27, call D: the kernel seed for the commit that routes the one-output read-out
# (kernels/src/linear/cube.rs changed, so the kernels' fingerprint did): tests/gpu/seed_cache.sh
# on $DIR/icl-lab.gz, its sweep cut at 120 s as in session 26. Call E follows on the same
# machine and times with this cache.
set -u
DIR=${DIR:-gpu/s27b} SWEEP_S=${SWEEP_S:-120} bash tests/gpu/seed_cache.sh
