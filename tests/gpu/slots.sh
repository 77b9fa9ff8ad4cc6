#!/usr/bin/env bash
# Run on the GPU machine from the repo root, with the stripped release binary gzipped at
# $DIR/icl-lab.gz and tests/gpu/slots_gpt2.toml at $DIR/slots_gpt2.toml (DIR=gpu/h2):
# 1. `bench scan --check` (the fused scan against the tensor-op scan, every CHECK_SHAPES shape);
# 2. several GPT-2 runs on one GPU (1,000 steps each): in one process as threads
#    (ICL_LAB_SLOTS=threads), in one process as child processes (the default), and as separate
#    processes; one run alone; four runs as child processes.
# Results: $OUT/scan.txt, $OUT/slots.jsonl (one sweep --json per line, with "config"), log.txt,
# ps-threads.txt and ps-processes.txt (per-thread CPU during the two 2-run sweeps).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/h2}
BIN=/tmp/icl; gunzip -c $DIR/icl-lab.gz > $BIN && chmod +x $BIN
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
SPEC=$DIR/slots_gpt2.toml
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$OUT/log.txt"
log "bench scan --check"
timeout 60 $BIN bench scan --check --reps 5 --against chunked:16 --shape 8,300,128,16 2>&1 | tee "$OUT/scan.txt"
log "bench scan: rc ${PIPESTATUS[0]}"
[ "${SKIP_SLOTS:-}" = 1 ] && { log done; exit 0; }
# sweep CONFIG [VAR=VALUE...] COMMAND...: one sweep into a fresh store, its JSON with the config added.
sweep() {
  local config=$1; shift
  local start=$SECONDS
  env "$@" > "$OUT/sweep.tmp" 2>> "$OUT/log.txt"; local rc=$?
  log "$config: rc $rc, $((SECONDS - start)) s wall"
  python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); v["config"]=sys.argv[2]; print(json.dumps(v))' "$OUT/sweep.tmp" "$config" >> "$OUT/slots.jsonl" || true
}
S="timeout 75 $BIN sweep $SPEC --json --devices"
# Per-thread CPU (ps -L: %CPU over each thread's life) of every icl process, 30 s into a sweep:
# CubeCL's per-device runner threads are named DSU-* (burn-fusion) and DSD-* (the CUDA server).
# (On 2026-12-01 the sweeps took under 30 s, so each sample caught the next sweep: see
# docs/performance.md. slots2.sh samples at 14 s.)
sample() { ( sleep 30; for p in $(pgrep -f "^$BIN"); do ps -L -o pid,tid,pcpu,comm,args -p $p | cut -c1-110; done > "$OUT/ps-$1.txt" ) & }
sample processes
sweep "2 runs, 1 process, child processes (--devices cuda:0,cuda:0 --slots-per-device 1)" ICL_LAB_HOME=$(mktemp -d) $S cuda:0,cuda:0 --slots-per-device 1
sample threads
sweep "2 runs, 1 process, threads (ICL_LAB_SLOTS=threads, same flags)" ICL_LAB_SLOTS=threads ICL_LAB_HOME=$(mktemp -d) $S cuda:0,cuda:0 --slots-per-device 1
log "2 separate processes (one run each, seeds 0 and 1)"
for s in 0 1; do sed "s/seeds = \[0, 1\]/seeds = [$s]/" $SPEC > /tmp/one$s.toml; done
( ICL_LAB_HOME=$(mktemp -d) timeout 75 $BIN sweep /tmp/one0.toml --json --devices cuda:0 > "$OUT/p0.json" 2>>"$OUT/log.txt" ) &
( ICL_LAB_HOME=$(mktemp -d) timeout 75 $BIN sweep /tmp/one1.toml --json --devices cuda:0 > "$OUT/p1.json" 2>>"$OUT/log.txt" ) &
wait; log "2 separate processes done"
for s in 0 1; do python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); v["config"]="1 run per process, 2 processes at once"; print(json.dumps(v))' "$OUT/p$s.json" >> "$OUT/slots.jsonl" || true; done
sed -i 's/steps = 1000/steps = 600/' /tmp/one0.toml
sweep "1 run alone (600 steps)" ICL_LAB_HOME=$(mktemp -d) timeout 60 $BIN sweep /tmp/one0.toml --json --devices cuda:0
sed "s/seeds = \[0, 1\]/seeds = [0, 1, 2, 3]/" $SPEC > /tmp/four.toml
sweep "4 runs, 1 process, child processes (--devices cuda:0 --slots-per-device 4)" ICL_LAB_HOME=$(mktemp -d) timeout 60 $BIN sweep /tmp/four.toml --json --devices cuda:0 --slots-per-device 4
log done
