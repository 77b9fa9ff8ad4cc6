#!/usr/bin/env bash
# Run on the GPU machine from the repo root, with the stripped release binary gzipped at
# gpu/kernel/icl-lab.gz: checks and times the fused selective scan (`bench scan --check`),
# runs the models matrix of issue 7 (`bench models`), the 82-token Mamba configs again with the
# tensor-op scan, and the PyTorch reference (tests/reference/torch_speed.py).
# Results: $OUT/scan.txt, models.txt, models_tensor.txt, torch.jsonl, log.txt.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
BIN=/tmp/icl-lab-kernel; gunzip -c gpu/kernel/icl-lab.gz > $BIN && chmod +x $BIN
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
log() { echo "== $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$OUT/log.txt"
log "bench scan --check"
timeout ${SCAN_LIMIT:-150} $BIN bench scan --check --json 2>&1 | tee "$OUT/scan.txt"
log "bench scan: rc ${PIPESTATUS[0]}"
[ "${SKIP_TRAIN:-}" = 1 ] && { log done; exit 0; }
log "bench models (fused scan)"
timeout ${MODELS_LIMIT:-240} $BIN bench models --json 2>&1 | tee "$OUT/models.txt"
log "bench models with ICL_LAB_SCAN=tensor (the 82-token Mamba configs; the others need the fused scan)"
ICL_LAB_SCAN=tensor timeout 90 $BIN bench models --only mamba-e128-l4-t82,mambaformer-e128-l4-t82 --json 2>&1 | tee "$OUT/models_tensor.txt"
log "PyTorch reference"
PYTHONUNBUFFERED=1 timeout 110 python3 tests/reference/torch_speed.py 2>&1 | tee "$OUT/torch.jsonl"
log done
