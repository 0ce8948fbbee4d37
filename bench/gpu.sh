#!/usr/bin/env bash
# The GPU comparison of the performance issue, in one go (< 8 minutes on one H100/H200):
# the published demo's per-frame loop vs animate run's pipeline on the same random vox-256 weights,
# end to end (mp4 in, mp4 with audio out) and model only, fp32, bf16 and compiled bf16, plus the default model.
#
# Needs torch with CUDA and this repository; PyAV may come as wheels in .whl/ (see bench/RESULTS.md):
#   bash bench/gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c "import av" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=src:${PYTHONPATH:-}
export PYTHONUNBUFFERED=1
failed=0  # a run that fails does not stop the others
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -m bench --device cuda --models vox-256 --frames 256 --batch-size 32 --precision fp32 \
  --memory --memory-model vox-256 || failed=1
# most telling first, so a run cut short still answers the targets: compiled bf16 (the model-only target) next
python3 -m bench --device cuda --models vox-256 --frames 512 --batch-size 64 --precision bf16 --compile || failed=1
python3 -m bench --device cuda --models default --frames 256 --batch-size 64 --precision bf16 || failed=1
python3 -m bench --device cuda --models vox-256 --frames 256 --batch-size 64 --precision bf16 || failed=1
python3 -m bench --device cuda --models vox-256 --frames 512 --batch-size 128 --precision bf16 --compile || failed=1
exit $failed
