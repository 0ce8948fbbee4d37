"""How much of a GPU's model time `animate run`'s threads hide, measured without a GPU.

    python -m bench.overlap --batch-size 32 --model-ms 1.0

The networks are replaced by a wait of ``--model-ms`` per frame and batch, during which the host thread holds no
lock, as it waits on a GPU; everything else is `run_animation` as it is: decoding and fitting in one thread,
composing and H.264 encoding with the audio in another. Each run is measured twice, interleaved: with the queues
between the threads as `animate run` sizes them, and with them forced to ``--baseline-depth`` frames (16, the
earlier fixed size). A pipeline that overlaps perfectly runs at the slower of the model and the encoder.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bench.clips import make_driving_clip


def waiting_animate(model_seconds: float):
    """A stand-in for ``Animator.animate``: the driving frame itself as the result, after the model's wait."""
    from animate_cli.pipeline import batched

    def animate(self, prepared, frames, reference, options, batch_size: int = 4) -> Iterator:
        for batch in batched(frames, batch_size):
            time.sleep(model_seconds * len(batch))
            for tag, image in batch:
                yield tag, [image for _ in prepared]

    return animate


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.overlap", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=512)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model-ms", type=float, default=1.0, help="the networks' time per frame, in ms")
    parser.add_argument("--baseline-depth", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from animate_cli import animation, pipeline
    from animate_cli.animation import RunRequest, run_animation
    from animate_cli.checkpoint import build_model
    from animate_cli.config import config_from_yaml
    from animate_cli.media.images import write_image

    pipeline.Animator.animate = waiting_animate(args.model_ms / 1000)
    queues_as_shipped = animation.prefetch, animation.BackgroundWriter
    baseline = args.baseline_depth
    queues_fixed = (  # the baseline's depth, whatever depth animate_cli asks for
        lambda items, depth=None: pipeline.prefetch(items, depth=baseline),
        lambda write, depth=None: pipeline.BackgroundWriter(write, depth=baseline),
    )
    # the smallest model of the published layout: only its image size matters, the wait stands in for its time
    config = config_from_yaml(
        "model_params:\n  common_params: {num_kp: 2, num_channels: 3, estimate_jacobian: false}\n"
        "  kp_detector_params: {temperature: 0.1, block_expansion: 4, max_features: 8, num_blocks: 2}\n"
        "  generator_params: {block_expansion: 4, max_features: 8, num_down_blocks: 1, num_bottleneck_blocks: 1,\n"
        "    dense_motion_params: {block_expansion: 4, max_features: 8, num_blocks: 2}}\n"
        f"dataset_params:\n  frame_shape: [{args.size}, {args.size}, 3]\n",
        name="overlap",
    )
    animator = pipeline.Animator(build_model(config).eval(), torch.device("cpu"), "fp32")
    print(f"# bench.overlap, {time.strftime('%Y-%m-%d %H:%M')}: {args.frames} frames of {args.size}x{args.size}, "
          f"batch {args.batch_size}, model {args.model_ms} ms/frame ({1000 / args.model_ms:.0f} frames/s alone)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip = make_driving_clip(folder / "driving.mp4", args.frames, args.size)
        source = folder / "source.png"
        write_image(source, np.full((args.size, args.size, 3), 128, np.uint8))
        request = RunRequest(sources=[source], driving=clip, outputs=[str(folder / "out.mp4")],
                             batch_size=args.batch_size, overwrite=True)
        run_animation(request, animator, checkpoint=None)  # warm-up: the first run in a process pays set-up costs
        rates: dict[str, list[float]] = {"as shipped": [], f"queues of {baseline} frames": []}
        for _ in range(args.repeats):
            for name, (prefetch, writer) in zip(rates, (queues_as_shipped, queues_fixed)):
                animation.prefetch, animation.BackgroundWriter = prefetch, writer
                started = time.perf_counter()
                (result,) = run_animation(request, animator, checkpoint=None)
                rates[name].append(result.frames / (time.perf_counter() - started))
    for name, values in rates.items():
        print(f"{name}: {' '.join(f'{v:.0f}' for v in values)} frames/s end to end (median {np.median(values):.0f})")


if __name__ == "__main__":
    main()
