#!/usr/bin/env bash
# Session 15, call 1: the session-14 branches against main, one machine. Binaries (release,
# --features cuda, stripped): main (d966383), members-both (main + adam-members + upload-ahead),
# adam-members (members clipped inside the fused Adam step), upload-ahead (the prefetch thread
# also uploads the batch). Each: its checks, then `bench members` 1 and 16 for GPT-2 e128 and Mamba e128
# with step phases (tests/gpu/members_ab.sh).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
DIR=gpu/s15 CHECKS="" BINS="main" bash tests/gpu/members_ab.sh
DIR=gpu/s15 CHECKS="adam" BINS="members-both" bash tests/gpu/members_ab.sh
DIR=gpu/s15 CHECKS="" BINS="upload-ahead" bash tests/gpu/members_ab.sh
DIR=gpu/s15 CHECKS="adam" BINS="adam-members" bash tests/gpu/members_ab.sh
