#!/usr/bin/env bash
# Phase 3 of the shipped pair on one GPU instead of the CPU, in a fixed wall-clock budget (checkpoints/README.md,
# "Phase 3 on a GPU"; the previous, ten-keypoint pair was trained this way on an H200):
#   1. both orders resume from their 5,700-step CPU runs (runs/puppets-128-{first,zeroth}/checkpoint.safetensors,
#      phases 1 and 2 of checkpoints/README.md), side by side on one GPU, at batch 32 and the full learning rates
#      (puppets-128-{first,zeroth}-gpu.yaml) until SECONDS have passed;
#   2. the order that made fewer steps catches up to the other's step, so both have had the same budget;
#   3. both make POLISH_STEPS more steps at x0.1 (puppets-128-{first,zeroth}-gpu-polish.yaml).
# The clock decides only how many steps phase 1 makes; the run prints them, and OUT_DIR/{first,zeroth}/ hold the
# checkpoints (OUT_DIR/{first,zeroth}-full-rate.safetensors: the weights before step 3).
#
#   bash checkpoints/train_gpu.sh [OUT_DIR] [SECONDS] [POLISH_STEPS] [DEVICE]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/gpu}
seconds=${2:-230}
polish=${3:-142}  # two epochs of the 2,280-sample data set at batch 32
device=${4:-cuda}
data=data/puppets-128-train
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

if [ ! -f "$data/dataset.json" ]; then
  python3 -m animate_cli data synth "$data" --size 128 --videos 240 --frames 64 --seed 1 --test-fraction 0.05 --quiet
fi

train() {  # ORDER CONFIG_SUFFIX MAX_STEPS SECONDS; a run stopped by the clock saves its checkpoint (SIGTERM)
  local status=0
  timeout -k 60 -s TERM "$4" python3 -m animate_cli train --config "checkpoints/configs/puppets-128-$1-$2.yaml" \
    --data "$data" --out "$out/$1" --batch-size 32 --device "$device" --precision fp32 --workers 6 --seed 0 \
    --checkpoint-every 250 --quiet --max-steps "$3" || status=$?
  [ "$status" -eq 0 ] || [ "$status" -eq 124 ]
}

step_of() {  # CHECKPOINT_FILE -> the step it holds
  python3 -c "import json, sys; from safetensors import safe_open
print(json.loads(safe_open(sys.argv[1], 'pt').metadata()['training_state'])['step'])" "$1"
}
step() { step_of "$out/$1/checkpoint.safetensors"; }  # ORDER -> the step of its run in OUT_DIR

for order in first zeroth; do
  start_file=runs/puppets-128-$order/checkpoint.safetensors
  if [ ! -f "$start_file" ] || [ "$(step_of "$start_file")" -ne 5700 ]; then
    echo "$start_file is missing or not at step 5,700: run phases 1 and 2 (checkpoints/README.md)" >&2
    exit 2
  fi
  mkdir -p "$out/$order"
  [ -f "$out/$order/checkpoint.safetensors" ] || cp "$start_file" "$out/$order/checkpoint.safetensors"
done
start=$(step first)
begin=$SECONDS
train first gpu 1000000 "$seconds" & first_pid=$!
train zeroth gpu 1000000 "$seconds" & zeroth_pid=$!
wait "$first_pid"
wait "$zeroth_pid"
echo "full rate, side by side: first at step $(step first), zeroth at step $(step zeroth) after $((SECONDS - begin)) s"

target=$(( $(step first) > $(step zeroth) ? $(step first) : $(step zeroth) ))
for order in first zeroth; do
  if [ "$(step "$order")" -lt "$target" ]; then
    begin=$SECONDS
    train "$order" gpu "$target" "$seconds"
    echo "$order caught up to step $(step "$order") in $((SECONDS - begin)) s"
  fi
done
if [ "$(step first)" -ne "$(step zeroth)" ]; then
  echo "the orders stopped at different steps ($(step first), $(step zeroth))" >&2
  exit 1
fi
for order in first zeroth; do cp "$out/$order/model.safetensors" "$out/$order-full-rate.safetensors"; done

begin=$SECONDS
train first gpu-polish $((target + polish)) "$seconds" & first_pid=$!
train zeroth gpu-polish $((target + polish)) "$seconds" & zeroth_pid=$!
wait "$first_pid"
wait "$zeroth_pid"
echo "x0.1: first at step $(step first), zeroth at step $(step zeroth) after $((SECONDS - begin)) s" \
  "($start + $((target - start)) at the full rate + $polish at x0.1 planned)"
