#!/usr/bin/env bash
# Second call: the 2-run configs again, threads first, 600 steps each, with a ps sample of the
# child-process sweep 14 s in. Results: $OUT/slots2.jsonl, log2.txt, ps2-processes.txt.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; DIR=${DIR:-gpu/h2}
BIN=/tmp/icl; gunzip -c $DIR/icl-lab.gz > $BIN && chmod +x $BIN
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
sed 's/steps = 1000/steps = 600/' $DIR/slots_gpt2.toml > /tmp/two.toml
log() { echo "== $(date +%T) $*" | tee -a "$OUT/log2.txt"; }
sweep() {
  local config=$1; shift; local start=$SECONDS
  env "$@" > "$OUT/sweep.tmp" 2>> "$OUT/log2.txt"; local rc=$?
  log "$config: rc $rc, $((SECONDS - start)) s wall"
  python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); v["config"]=sys.argv[2]; print(json.dumps(v))' "$OUT/sweep.tmp" "$config" >> "$OUT/slots2.jsonl" || true
}
sweep "2 runs, threads (ICL_LAB_SLOTS=threads --devices cuda:0,cuda:0 --slots-per-device 1)" ICL_LAB_SLOTS=threads ICL_LAB_HOME=$(mktemp -d) timeout 40 $BIN sweep /tmp/two.toml --json --devices cuda:0,cuda:0 --slots-per-device 1
( sleep 14; for p in $(pgrep -f "^$BIN"); do ps -L -o pid,ppid,tid,pcpu,comm,args -p $p | cut -c1-100; done > "$OUT/ps2-processes.txt" ) &
sweep "2 runs, child processes (--devices cuda:0,cuda:0 --slots-per-device 1)" ICL_LAB_HOME=$(mktemp -d) timeout 40 $BIN sweep /tmp/two.toml --json --devices cuda:0,cuda:0 --slots-per-device 1
sweep "2 runs, child processes (--devices cuda:0 --slots-per-device 2)" ICL_LAB_HOME=$(mktemp -d) timeout 40 $BIN sweep /tmp/two.toml --json --devices cuda:0 --slots-per-device 2
wait; log done
