#!/bin/bash
# Session 7 call 6: does GPT-2 train the same with the fused attention as with tensor ops?
# The quick linear-regression and vector-MQAR experiments (GPT-2, head size 16), same seed,
# 2,000 steps, ICL_LAB_ATTENTION=fused and =tensor, all four at once.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64
export ICL_LAB_KERNEL_CACHE=/tmp/kc
gunzip -c gpu/s7/new.gz > /tmp/new && chmod +x /tmp/new
for task in linear_regression vector_mqar; do
  for mode in fused tensor; do
    ICL_LAB_ATTENTION=$mode timeout 200 /tmp/new run experiments/quick/$task.toml --device cuda:0 --no-store --json > $OUT/${task}_$mode.json 2> $OUT/${task}_$mode.err &
  done
done
wait
for f in $OUT/*.err; do echo "== $f"; tail -3 $f; done
python3 - <<'PY'
import json, glob, os
for f in sorted(glob.glob(os.environ['OUT'] + '/*.json')):
    try:
        r = json.load(open(f))
    except Exception as e:
        print(os.path.basename(f), 'unreadable', e); continue
    ev = r['final_eval']
    model = ev.get('model') or ev.get('mean') or {}
    print(os.path.basename(f), 'last', r['last'], 'wall', round(r['wall_s'], 1))
    print('   final_eval keys', list(ev.keys())[:8])
    print('   ', json.dumps({k: v for k, v in ev.items() if k != 'baselines'})[:400])
PY
