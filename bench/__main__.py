"""``python -m bench``: animate-cli's pipeline against the published demo's loop, in one run, on the same weights.

Each measurement runs in its own process (``bench.worker``) so its peak resident memory is its own; the two
sides of a comparison run back to back in this one invocation, and the table reports their ratios.

    python -m bench                         # vox-256 (random weights) and the default model, 32 frames, CPU
    python -m bench --models default --frames 64 --batch-size 8
    python -m bench --memory                # peak memory of the pipeline on 300 vs 3,000 driving frames
    python -m bench --device cuda --precision bf16 --batch-size 64 --compile
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.clips import make_driving_clip


def run_worker(*args: str) -> dict:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.worker", *args], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise SystemExit(f"bench worker failed ({' '.join(args)}):\n{completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def model_size(spec: str) -> int:
    from animate_cli.checkpoint import load_checkpoint
    from animate_cli.config import load_config, preset_names

    return load_config(spec).image_size if spec in preset_names() else load_checkpoint(spec).image_size


def resolve_model(name: str) -> str | None:
    """'default' -> the shipped first-order checkpoint's path (None when not installed); presets as they are."""
    if name != "default":
        return name
    from animate_cli.checkpoint import resolve_checkpoint
    from animate_cli.errors import CheckpointError

    try:
        return str(resolve_checkpoint(None))
    except CheckpointError:
        return None


def compare(spec: str, frames: int, args: argparse.Namespace, folder: Path) -> list[dict]:
    size = model_size(spec)
    clip = make_driving_clip(folder / f"driving_{size}_{frames}.mp4", frames, size)
    options = ["--batch-size", str(args.batch_size), "--precision", args.precision, "--device", args.device]
    if args.threads:
        options += ["--threads", str(args.threads)]
    reference = run_worker("reference", spec, str(clip), *options)
    pipeline = run_worker("pipeline", spec, str(clip), *options, *(["--compile"] if args.compile else []))
    stages = run_worker("stages", spec, str(clip), *options)
    return [reference, pipeline, stages]


def memory(spec: str, args: argparse.Namespace, folder: Path) -> list[dict]:
    size = model_size(spec)
    results = []
    for frames in (300, 3000):
        clip = make_driving_clip(folder / f"long_{size}_{frames}.mp4", frames, size)
        results.append({"frames_in": frames, **run_worker("pipeline", spec, str(clip), "--batch-size",
                                                          str(args.batch_size), "--device", args.device,
                                                          "--precision", args.precision)})
    return results


def print_memory(spec: str, short: dict, long: dict) -> None:
    print(f"\n### memory, {spec}: pipeline peak RSS {short['peak_rss_mb']:.0f} MB for 300 frames, "
          f"{long['peak_rss_mb']:.0f} MB for 3,000 frames: ratio {long['peak_rss_mb'] / short['peak_rss_mb']:.3f} "
          f"(frames written {short['frames']} / {long['frames']})")
    if "peak_gpu_mb" in short:
        print(f"peak GPU memory {short['peak_gpu_mb']:.0f} MB for 300 frames, {long['peak_gpu_mb']:.0f} MB for "
              f"3,000 frames: ratio {long['peak_gpu_mb'] / short['peak_gpu_mb']:.3f}")


def startup(folder: Path) -> dict[str, float]:
    """Median wall time of `animate --help`, and of a whole `animate run` of a one-frame clip with the default
    model (an upper bound on the time to the first frame: start-up, model load, one frame, writing)."""
    import statistics

    from animate_cli.data.puppets import render, sample_identity, sample_motion
    from animate_cli.media.images import write_image

    def wall(command: list[str]) -> float:
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        return time.perf_counter() - started

    animate = [sys.executable, "-m", "animate_cli"]
    help_seconds = statistics.median(wall([*animate, "--help"]) for _ in range(5))
    result = {"help_seconds": help_seconds}
    spec = resolve_model("default")
    if spec is not None:
        size = model_size(spec)
        clip = make_driving_clip(folder / "one_frame.mp4", 1, size)
        rng = np.random.default_rng(7)
        write_image(folder / "source.png", render(sample_identity(rng), sample_motion(rng, 1, 25).pose(0), size)[0])
        run = [*animate, "run", str(folder / "source.png"), str(clip), "-o", str(folder / "one.mp4"), "--overwrite"]
        result["first_frame_seconds"] = statistics.median(wall(run) for _ in range(3))
    return result


def print_comparison(model: str, reference: dict, pipeline: dict, stages: dict) -> None:
    def ratio(key: str) -> str:
        return f"{pipeline[key] / reference[key]:.2f}x"

    print(f"\n### {model} ({reference['frames']} frames)\n")
    print("| | reference loop (published demo) | animate run pipeline | ratio |")
    print("|---|---|---|---|")
    print(f"| frames/s end to end | {reference['fps_end_to_end']:.2f} | {pipeline['fps_end_to_end']:.2f} | "
          f"{ratio('fps_end_to_end')} |")
    print(f"| frames/s end to end, second run | {reference['fps_end_to_end_warm']:.2f} | "
          f"{pipeline['fps_end_to_end_warm']:.2f} | {ratio('fps_end_to_end_warm')} |")
    print(f"| frames/s model only | {reference['fps_model']:.2f} | {pipeline['fps_model']:.2f} | "
          f"{ratio('fps_model')} |")
    print(f"| peak RSS (MB) | {reference['peak_rss_mb']:.0f} | {pipeline['peak_rss_mb']:.0f} | "
          f"{pipeline['peak_rss_mb'] / reference['peak_rss_mb']:.2f}x |")
    if "peak_gpu_mb" in pipeline:
        print(f"| peak GPU memory (MB) | {reference['peak_gpu_mb']:.0f} | {pipeline['peak_gpu_mb']:.0f} | |")
    compiled = ", torch.compile (its compilation counts in end to end)" if pipeline.get("compiled") else ""
    print(f"| settings | batch 1, fp32 | batch {pipeline['batch_size']}, {pipeline['precision']}, "
          f"{pipeline['threads']} threads{compiled} | |")
    print(f"\nThe pipeline's stages alone, without the networks: decoding and fitting {stages['fps_decode']:.0f} "
          f"frames/s, encoding with the audio {stages['fps_encode']:.0f} frames/s.")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="vox-256,default", help="comma-separated presets and/or 'default'")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4, help="the pipeline's, as `animate run`'s default")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                        help="the pipeline's precision; auto, as `animate run` (bf16 where native, else fp32)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true", help="the pipeline with `animate run --compile`")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--memory", action="store_true", help="also measure 300 vs 3,000 frames")
    parser.add_argument("--memory-model", default="default", help="the model --memory runs (default: the shipped one)")
    parser.add_argument("--startup", action="store_true", help="also time `animate --help` and a one-frame run")
    parser.add_argument("--json", type=Path, default=None, help="also write all results to this JSON file")
    args = parser.parse_args()

    import torch

    print(f"# bench, {time.strftime('%Y-%m-%d %H:%M')}, {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, device {args.device}")
    print(f"command: python -m bench {' '.join(sys.argv[1:])}")
    everything: dict[str, object] = {"argv": sys.argv[1:]}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.models.split(","):
            spec = resolve_model(name)
            if spec is None:
                print(f"\n### {name}: not installed, skipped")
                continue
            reference, pipeline, stages = compare(spec, args.frames, args, folder)
            print_comparison(name, reference, pipeline, stages)
            everything[name] = {"reference": reference, "pipeline": pipeline, "stages": stages}
        if args.memory:
            spec = resolve_model(args.memory_model) or "vox-256"
            short, long = memory(spec, args, folder)
            print_memory(spec, short, long)
            everything["memory"] = {"300": short, "3000": long}
        if args.startup:
            timing = startup(folder)
            print(f"\n### start-up: `animate --help` {timing['help_seconds']:.2f} s (median of 5)"
                  + (f"; `animate run` of a one-frame clip with the default model, whole process "
                     f"{timing['first_frame_seconds']:.2f} s (median of 3)" if "first_frame_seconds" in timing else ""))
            everything["startup"] = timing
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))


if __name__ == "__main__":
    main()
