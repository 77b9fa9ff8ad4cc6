#!/usr/bin/env bash
# Issue 4: steady steps/s of S4, S4-Mamba and the Standard Hybrid at the paper's linear-regression
# sizes (experiments/paper/linear_regression_*.toml), one at a time, 200 steps, no store.
set -u
BIN=/tmp/icl-lab; gunzip -c gpu/icl-lab.gz > $BIN && chmod +x $BIN
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
for a in s4 s4_mamba hybrid; do
  timeout 55 $BIN run experiments/paper/linear_regression_$a.toml --device cuda --steps 200 --no-store --json > $OUT/$a.json 2> $OUT/$a.err
  python3 -c "
import json; d=json.load(open('$OUT/$a.json')); l=d['last']
print('$a', 'params', d['params'], 'steps/s (last window)', round(l['steps_per_s'],1), 'ms/step', round(1000/l['steps_per_s'],1), 'first step', round(d['first_step_s'],1), 's')
" | tee -a $OUT/archs.txt
done
