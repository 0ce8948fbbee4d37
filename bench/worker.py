"""One benchmark measurement in its own process, so its peak memory is its own. Prints one JSON line.

python -m bench.worker MODE MODEL CLIP [--batch-size N] [--precision P] [--device D] [--compile]
MODE: reference | pipeline | stages (the pipeline's decoding and encoding alone, without the networks).
MODEL: a preset name (random weights, seed 0) or a checkpoint file.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def load_model(spec: str):
    from animate_cli.checkpoint import build_model, load_checkpoint
    from animate_cli.config import load_config, preset_names

    if spec in preset_names():
        torch.manual_seed(0)  # the same random weights in every process
        return build_model(load_config(spec)).eval()
    return load_checkpoint(spec)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def source_image(size: int) -> np.ndarray:
    from animate_cli.data.puppets import render, sample_identity, sample_motion

    rng = np.random.default_rng(123)
    image, _ = render(sample_identity(rng), sample_motion(rng, 1, 25).pose(0), size)
    return image


def measure_reference(model, clip: Path, out_dir: Path, device: str) -> dict:
    """Twice in this process: the first run pays the one-time costs (CUDA's lazy kernel loading), the second not."""
    from animate_cli.pipeline import resolve_device
    from bench.reference import reference_animation

    cold, warm = (
        reference_animation(model, source_image(model.image_size), clip, out_dir / "reference.mp4",
                            resolve_device(device))
        for _ in range(2)
    )
    return {
        "frames": cold["frames"],
        "fps_end_to_end": cold["frames"] / cold["seconds"],
        "fps_end_to_end_warm": warm["frames"] / warm["seconds"],
        "fps_model": warm["frames"] / warm["model_seconds"],
    }


def measure_pipeline(
    model, clip: Path, out_dir: Path, batch_size: int, precision: str, device: str, compile: bool = False
) -> dict:
    """End to end twice (the first run pays the one-time costs: torch.compile's compilation when asked for, cuDNN's
    autotuning, CUDA's lazy kernel loading; the second not), then model only (after a warm-up)."""
    from animate_cli.animation import RunRequest, run_animation
    from animate_cli.media.images import write_image
    from animate_cli.media.resize import fit_image
    from animate_cli.media.video import open_video
    from animate_cli.pipeline import Animator, MotionOptions, resolve_device

    source_path = out_dir / "source.png"
    write_image(source_path, source_image(model.image_size))
    animator = Animator(model, resolve_device(device), precision, compile=compile)
    request = RunRequest(sources=[source_path], driving=clip, outputs=[str(out_dir / "pipeline.mp4")],
                         batch_size=batch_size, overwrite=True)
    rates = []
    for _ in range(2):
        started = time.perf_counter()
        (result,) = run_animation(request, animator, checkpoint=None)
        rates.append(result.frames / (time.perf_counter() - started))
    rss_after_run = peak_rss_mb()

    # model only: the same frames already decoded and fitted (at most 4 batches or 64 frames, to bound memory and
    # time while a large batch still runs full several times)
    limit = max(64, 4 * batch_size)
    with open_video(clip) as reader:
        frames = []
        for frame in reader:
            frames.append(fit_image(frame.image, model.image_size, "crop"))
            if len(frames) == limit:
                break
    prepared = [animator.prepare_source(source_image(model.image_size))]
    list(animator.animate(prepared, enumerate(frames[:batch_size]), None, MotionOptions(), batch_size))  # warm-up
    if animator.device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in animator.animate(prepared, enumerate(frames), None, MotionOptions(), batch_size):
        pass
    if animator.device.type == "cuda":
        torch.cuda.synchronize()
    model_only = len(frames) / (time.perf_counter() - started)
    return {"frames": result.frames, "fps_end_to_end": rates[0], "fps_end_to_end_warm": rates[1],
            "fps_model": model_only,
            "peak_rss_mb_run": rss_after_run, "precision": animator.precision, "compiled": compile}


def measure_stages(model, clip: Path, out_dir: Path) -> dict:
    """The stages around the networks, each alone: decoding with fitting to the model's size, then H.264 encoding
    with the clip's audio muxed, as `animate run` writes. They bound its end-to-end rate however fast the networks
    are. The decoded frames are held in memory in between (bench clips are short)."""
    from animate_cli.media.resize import fit_image
    from animate_cli.media.video import open_video
    from animate_cli.media.writer import VideoWriter

    started = time.perf_counter()
    with open_video(clip) as reader:
        fps = reader.info.fps
        frames = [(frame.time, fit_image(frame.image, model.image_size, "crop")) for frame in reader]
    decoding = time.perf_counter() - started
    started = time.perf_counter()
    with VideoWriter(out_dir / "stages.mp4", fps=fps, audio_source=clip, overwrite=True) as writer:
        for frame_time, image in frames:
            writer.write(image, time=frame_time)
    encoding = time.perf_counter() - started
    return {"frames": len(frames), "fps_decode": len(frames) / decoding, "fps_encode": len(frames) / encoding}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["reference", "pipeline", "stages"])
    parser.add_argument("model")
    parser.add_argument("clip", type=Path)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--compile", action="store_true", help="pipeline only: torch.compile the networks")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        if args.mode == "reference":
            result = measure_reference(model, args.clip, Path(tmp), args.device)
        elif args.mode == "stages":
            result = measure_stages(model, args.clip, Path(tmp))
        else:
            result = measure_pipeline(model, args.clip, Path(tmp), args.batch_size, args.precision, args.device,
                                      args.compile)
    result.update(mode=args.mode, model=args.model, peak_rss_mb=peak_rss_mb(), threads=torch.get_num_threads(),
                  batch_size=args.batch_size if args.mode == "pipeline" else 1)
    result.setdefault("precision", "fp32")  # the reference loop is always fp32; the pipeline's is auto resolved
    if torch.cuda.is_available():
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(result))


if __name__ == "__main__":
    main()
