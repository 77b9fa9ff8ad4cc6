#!/usr/bin/env bash
# Session 17, call 2: the upload branches against main on one machine (stripped release
# binaries in gpu/s17: main, upload-same-stream; compact-upload did not fit the call), `bench members` 1 and 16 for
# GPT-2 e128 and Mamba e128 (no phase timing); then session16's two scan layouts, checked and
# timed at five shapes and in `bench members` (tests/gpu/scan_layouts.sh).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PHASES=0
DIR=gpu/s17 CHECKS="" BINS="main upload-same-stream" bash tests/gpu/members_ab.sh
mkdir -p /tmp/sl && cp gpu/s17/session16.gz /tmp/sl/icl-lab.gz
DIR=/tmp/sl bash tests/gpu/scan_layouts.sh
