#!/usr/bin/env bash
# The per-architecture files named here were folded into experiments/paper/linear_regression.toml
# (a sweep of six architectures) in session 4; check out e731072 to rerun this as it was.
# Run on the GPU machine from the repo root (binary at gpu/icl-lab.gz): compares the scan modes
# of the tensor-op Mamba, and times the e = 256 sizes on 280 tokens (the sparse-parity shapes,
# with linear-regression data: d = 10, 140 points).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
BIN=/tmp/icl-lab; gunzip -c gpu/icl-lab.gz > $BIN && chmod +x $BIN
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
large() { # arch lines -> spec file
  cat > /tmp/$1.toml <<SPEC
name = "large-$1"
[task]
kind = "linear_regression"
n_dims = 10
[model]
$2
[train]
steps = 200
batch_size = 64
lr = 1e-4
eval_every = 100000
eval_prompts = 64
log_every = 50
[train.curriculum]
dims = { start = 10, end = 10 }
points = { start = 140, end = 140 }
SPEC
}
for mode in chunked:16 chunked:8 chunked:32 sequential; do
  ICL_LAB_SCAN=$mode run mamba_${mode/:/} 120 experiments/paper/linear_regression_mamba.toml --device cuda --steps 300
done
large gpt2 $'arch = "gpt2"\nn_embd = 256\nn_layer = 12\nn_head = 8\nn_positions = 300'
run gpt2_e256_l12 150 /tmp/gpt2.toml --device cuda
large mamba $'arch = "mamba"\nn_embd = 256\nn_layer = 24'
ICL_LAB_SCAN=sequential run mamba_e256_l24_seq 150 /tmp/mamba.toml --device cuda --steps 50
ICL_LAB_SCAN=chunked:8 run mamba_e256_l24_chunk8 150 /tmp/mamba.toml --device cuda --steps 50
log done
