#!/usr/bin/env bash
# Run on the GPU machine from the repo root, with the stripped release binary gzipped at
# gpu/kernel/icl-lab.gz: checks and times the fused selective scan (`bench scan --check`),
# then trains the paper's Mamba (e = 128, L = 4) on 82 tokens with the fused and the tensor-op
# scan, and on 1,024 tokens with the fused scan.
# Results: $OUT/scan.txt, $OUT/results.jsonl, $OUT/log.txt.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
BIN=/tmp/icl-lab-kernel; gunzip -c gpu/kernel/icl-lab.gz > $BIN && chmod +x $BIN
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $*" | tee -a "$OUT/log.txt"; }
run() { # label, timeout, args...
  local label=$1 limit=$2; shift 2
  log "$label: ICL_LAB_SCAN=${ICL_LAB_SCAN:-default} $*"
  local t0=$(date +%s.%N)
  timeout $limit $BIN run "$@" --json > /tmp/r_$label.json 2>> "$OUT/log.txt"; local rc=$?
  local t1=$(date +%s.%N)
  python3 -c "import json; d=json.load(open('/tmp/r_$label.json')); d['label']='$label'; d['process_s']=$t1-$t0; d.pop('spec',None); d.pop('final_eval',None); print(json.dumps(d))" >> "$OUT/results.jsonl" 2>/dev/null || log "$label: no JSON (rc $rc)"
  log "$label: rc $rc, $(python3 -c "print(round($t1-$t0,1))") s; $(nvidia-smi --query-gpu=memory.used --format=csv,noheader)"
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$OUT/log.txt"
log "bench scan --check"
timeout ${SCAN_LIMIT:-240} $BIN bench scan --check --json 2>&1 | tee "$OUT/scan.txt"
log "bench scan: rc ${PIPESTATUS[0]}"
[ "${SKIP_TRAIN:-}" = 1 ] && { log done; exit 0; }
spec() { # name points steps -> /tmp/name.toml: the paper's Mamba (e = 128, L = 4), d = 20, batch 64
  cat > /tmp/$1.toml <<SPEC
name = "$1"
[task]
kind = "linear_regression"
n_dims = 20
[model]
arch = "mamba"
n_embd = 128
n_layer = 4
[train]
steps = $3
batch_size = 64
lr = 1e-4
eval_every = 100000
eval_prompts = 64
log_every = 10
[train.curriculum]
dims = { start = 20, end = 20 }
points = { start = $2, end = $2 }
SPEC
}
spec mamba82 41 ${STEPS_82:-150}
spec mamba1024 512 ${STEPS_1024:-30}
run mamba82_fused ${RUN_LIMIT:-40} /tmp/mamba82.toml --device cuda
ICL_LAB_SCAN=tensor run mamba82_tensor ${RUN_LIMIT:-40} /tmp/mamba82.toml --device cuda
run mamba1024_fused ${RUN_LIMIT:-40} /tmp/mamba1024.toml --device cuda
log done
