"""Turn a training run into a shipped checkpoint: the run's model plus how it was made and what it measured.

    python checkpoints/publish.py runs/puppets-128-first/checkpoint.safetensors checkpoints/first-order.safetensors \
        --evaluation runs/eval-first.json --command "animate train ..." --data-seed 1

The provenance keeps what training recorded (data folder, steps, epochs, config, loss, seed, dates) and adds the
command line, the data seed, the machine, and the metrics of ``animate evaluate --json`` on held-out data.
Given a run's ``checkpoint.safetensors``, the optimizer state rides along (the file stays under 25 MB), so
training can continue from the shipped file: copy it to ``RUN_DIR/checkpoint.safetensors`` and run
``animate train`` with a larger ``--max-steps``.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

from animate_cli.checkpoint import TRAINING_STATE_PREFIX, load_checkpoint, read_safetensors, save_checkpoint


def metrics_from_evaluation(evaluation: dict) -> dict[str, float]:
    """The figures `animate checkpoints list` shows, flattened from the evaluation JSON."""
    animation = evaluation.get("animation", {})
    local_motion = evaluation.get("local_motion", {})
    return {
        "reconstruction_l1": evaluation["reconstruction"]["l1"],
        "keypoint_error_px": evaluation.get("keypoints", {}).get("error_px"),
        "flow_epe_px": evaluation.get("flow", {}).get("epe"),
        "local_motion_error": local_motion.get("error"),
        "local_motion_identity_error": local_motion.get("identity_error"),
        "keypoints_on_subject": local_motion.get("on_subject"),
        "animation_l1": animation.get("l1"),
        "animation_subject_l1": animation.get("subject_l1"),
        "animation_background_l1": animation.get("background_l1"),
        "still_source_l1": animation.get("still_source_l1"),
        "driving_frame_l1": animation.get("driving_frame_l1"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("destination", type=Path)
    parser.add_argument("--evaluation", type=Path, required=True, help="output of animate evaluate --json")
    parser.add_argument("--command", required=True, help="the training command line")
    parser.add_argument("--data-seed", type=int, required=True)
    parser.add_argument("--evaluation-data", default="held-out puppets, another seed (see checkpoints/README.md)")
    parser.add_argument("--machine", help="where it was trained (default: this machine, which publishes it)")
    args = parser.parse_args()

    model = load_checkpoint(args.model)
    evaluation = json.loads(args.evaluation.read_text())
    provenance = dict(model.provenance)
    provenance["data"] = f"animate data synth, seed {args.data_seed} ({Path(provenance['data']).name})"
    provenance.update(
        command=args.command,
        data_seed=args.data_seed,
        machine=args.machine or f"{platform.machine()}, {platform.processor() or 'cpu'}",
        metrics=metrics_from_evaluation(evaluation),
        evaluation_data=args.evaluation_data,
    )
    tensors, metadata = read_safetensors(args.model)
    training_tensors = {k: v for k, v in tensors.items() if k.startswith(TRAINING_STATE_PREFIX)}
    training_metadata = {"training_state": metadata["training_state"]} if "training_state" in metadata else None
    save_checkpoint(model, args.destination, provenance=provenance, extra_tensors=training_tensors,
                    extra_metadata=training_metadata)
    print(f"wrote {args.destination} ({args.destination.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
