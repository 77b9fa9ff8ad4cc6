#!/usr/bin/env bash
# Session 3 GPU batch: fused-scan check + timing, the models matrix, and every task's quick
# experiment plus the paper-size S4 / S4-Mamba / hybrid configs on CUDA (concurrently).
set -u
BIN=/tmp/icl-lab; gunzip -c gpu/icl-lab.gz > $BIN && chmod +x $BIN
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $OUT/log.txt
echo "== scan" >> $OUT/log.txt
timeout 100 $BIN bench scan --check --json > $OUT/scan.txt 2>&1; echo "scan rc $?" >> $OUT/log.txt
echo "== models" >> $OUT/log.txt
timeout 200 $BIN bench models --json > $OUT/models.txt 2>&1; echo "models rc $?" >> $OUT/log.txt
echo "== tasks" >> $OUT/log.txt
mkdir -p /tmp/runs
for f in experiments/quick/*.toml; do
  t=$(basename $f .toml)
  timeout 130 $BIN run $f --device cuda --steps 300 --no-store --json > /tmp/runs/quick-$t.json 2> /tmp/runs/quick-$t.err &
done
for a in s4 s4_mamba hybrid; do
  timeout 130 $BIN run experiments/paper/linear_regression_$a.toml --device cuda --steps 100 --no-store --json > /tmp/runs/paper-$a.json 2> /tmp/runs/paper-$a.err &
done
wait
for f in /tmp/runs/*.json; do
  python3 -c "
import json,sys
try:
  d=json.load(open('$f'))
  fe=(d.get('final_eval') or {})
  print('$f'.split('/')[-1], d.get('outcome'), 'steps', d.get('steps'), 'params', d.get('params'), 'first_step_s', round(d.get('first_step_s') or -1,1), 'wall', round(d.get('wall_s',0),1))
except Exception as e:
  print('$f'.split('/')[-1], 'unreadable', e, open('$f'.replace('.json','.err')).read()[-300:])
" >> $OUT/tasks.txt
done
tar czf $OUT/runs.tgz -C /tmp runs
echo done >> $OUT/log.txt
cat $OUT/log.txt $OUT/tasks.txt; tail -c 1500 $OUT/scan.txt; tail -c 2500 $OUT/models.txt
