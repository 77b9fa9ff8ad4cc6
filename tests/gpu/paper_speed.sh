#!/usr/bin/env bash
# The per-architecture files named here were folded into experiments/paper/linear_regression.toml
# (a sweep of six architectures) in session 4; check out e731072 to rerun this as it was.
# Run on the GPU machine from the repo root, with the stripped release binary gzipped at
# gpu/icl-lab.gz: times the paper-sized models of experiments/paper/ on one GPU.
# Results: $OUT/results.jsonl (one `icl-lab run --json` document per line), $OUT/log.txt.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
BIN=/tmp/icl-lab; gunzip -c gpu/icl-lab.gz > $BIN && chmod +x $BIN
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
STEPS=${STEPS:-300}
log() { echo "== $*" | tee -a "$OUT/log.txt"; }
run() { # label, args...
  local label=$1; shift
  log "$label: $*"
  local t0=$(date +%s.%N)
  $BIN run "$@" --json > /tmp/r_$label.json 2>> "$OUT/log.txt"; local rc=$?
  local t1=$(date +%s.%N)
  python3 -c "import json,sys; d=json.load(open('/tmp/r_$label.json')); d['label']='$label'; d['process_s']=$t1-$t0; d.pop('spec',None); print(json.dumps(d))" >> "$OUT/results.jsonl" 2>> "$OUT/log.txt" || log "$label: no JSON (rc $rc)"
  log "$label: rc $rc, $(python3 -c "print(round($t1-$t0,1))") s"
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$OUT/log.txt"
run gpt2_cold experiments/paper/linear_regression.toml --device cuda --steps $STEPS
run gpt2_warm experiments/paper/linear_regression.toml --device cuda --steps 3000
for a in mamba s4 s4_mamba mambaformer hybrid; do
  run $a experiments/paper/linear_regression_$a.toml --device cuda --steps $STEPS
done
log "4 concurrent GPT-2 runs, 1000 steps each"
for i in 1 2 3 4; do
  (run gpt2_concurrent_$i experiments/paper/linear_regression.toml --device cuda --steps 1000 --seed $i) &
done
wait
log done
