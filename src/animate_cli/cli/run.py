"""``animate run``: the main job. Parses options, calls :mod:`animate_cli.animation`, reports."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from animate_cli.cli import EXIT_CODES_HELP
from animate_cli.cli.options import checkpoint_options, device_option, json_option, quiet_option
from animate_cli.cli.progress import frame_progress

if TYPE_CHECKING:
    from animate_cli.animation import RunRequest


def build_request(
    sources: list[Path],
    driving: Path,
    outputs: list[str],
    options: Mapping[str, Any],
    batch_size: int,
    overwrite: bool,
    landmarks_weights: str | None,
) -> RunRequest:
    """The request for ``options``, the values of ``animate run``'s per-job options
    (``animate_cli.batch.JOB_OPTIONS``) as Click converted them: the one place they become a :class:`RunRequest`,
    for `animate run` and each `animate batch` job.

    Raises click.BadParameter (a usage error) naming a malformed box, size or colour.
    """
    from animate_cli.animation import RunRequest
    from animate_cli.pipeline import MotionOptions

    source_box = options["source_box"]
    return RunRequest(
        sources=sources,
        driving=driving,
        outputs=outputs,
        motion=MotionOptions(relative=options["relative"], adapt_scale=options["adapt_scale"]),
        ref_frame=options["ref_frame"],
        batch_size=batch_size,
        fit=options["fit"],
        driving_box=parse_box(options["driving_box"], "--driving-box"),
        background=parse_color(options["background"]),
        layout=options["layout"],
        output_size=parse_size(options["output_size"]),
        audio=not options["no_audio"],
        overwrite=overwrite,
        find_best_frame=options["find_best_frame"] or options["best_frame_by"] is not None,
        best_frame_by=options["best_frame_by"],
        landmarks_weights=None if landmarks_weights is None else Path(landmarks_weights),
        source_box=source_box if source_box in (None, "auto") else parse_box(source_box, "--source-box"),
    )


def parse_box(value: str | None, name: str) -> tuple[int, int, int, int] | None:
    if value is None:
        return None
    parts = value.split(",")
    if len(parts) != 4 or not all(p.strip().lstrip("-").isdigit() for p in parts):
        raise click.BadParameter(f"expected x,y,w,h in pixels, got '{value}'", param_hint=name)
    x, y, w, h = (int(p) for p in parts)
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise click.BadParameter(f"needs x, y >= 0 and w, h > 0, got '{value}'", param_hint=name)
    return x, y, w, h


def parse_size(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    parts = value.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise click.BadParameter(f"expected WxH such as 512x512, got '{value}'", param_hint="--output-size")
    return int(parts[0]), int(parts[1])


def parse_color(value: str) -> tuple[int, int, int]:
    named = {"white": (255, 255, 255), "black": (0, 0, 0), "gray": (128, 128, 128), "grey": (128, 128, 128)}
    if value.lower() in named:
        return named[value.lower()]
    hex_value = value.lstrip("#")
    if len(hex_value) == 6:
        try:
            return tuple(int(hex_value[i:i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]
        except ValueError:
            pass
    raise click.BadParameter(f"expected white, black, gray or #RRGGBB, got '{value}'", param_hint="--background")


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("inputs", nargs=-1, required=True, metavar="SOURCE... DRIVING")
@click.option("-o", "--output", default=None, metavar="PATH",
              help="Output file (.mp4 .webm .mkv .gif), folder/ (PNG frames, or one file per source), or "
              "name%05d.png. Default: <source>_<driving>.mp4 in the working directory.")
@checkpoint_options
@click.option("--relative/--absolute", default=True, show_default=True,
              help="Move the source keypoints by the driving motion since the reference frame, or copy the "
              "driving keypoints as they are (absolute copies the driver's shape).")
@click.option("--adapt-scale/--no-adapt-scale", default=True, show_default=True,
              help="Scale relative motion by the ratio of keypoint convex-hull areas (source / reference frame).")
@click.option("--ref-frame", type=click.IntRange(min=0), default=0, show_default=True,
              help="Index of the driving frame whose pose maps onto the source (relative mode).")
@click.option("--fit", type=click.Choice(["crop", "pad", "stretch"]), default="crop", show_default=True,
              help="How images are brought to the model's square size.")
@click.option("--driving-box", default=None, metavar="x,y,w,h", help="Use only this region of the driving frames.")
@click.option("--background", default="white", show_default=True, metavar="COLOR",
              help="Colour behind transparent source pixels (white, black, gray, #RRGGBB).")
@click.option("--layout", type=click.Choice(["result", "side-by-side"]), default="result", show_default=True,
              help="The result alone, or source | driving | result.")
@click.option("--output-size", default=None, metavar="WxH", help="Resample output frames to this size.")
@click.option("--no-audio", is_flag=True, help="Do not copy the driving video's sound.")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True,
              help="Driving frames per model call (4 suits 2-core CPUs, see bench/RESULTS.md; 32-64 on a GPU).")
@device_option
@click.option("--precision", type=click.Choice(["auto", "fp32", "fp16", "bf16"]), default="auto", show_default=True,
              help="Compute precision (autocast). auto: bf16 where the hardware has it (GPUs from Ampere on, CPUs "
              "with AVX512-BF16 or AMX; within 1/255 of fp32 and up to 1.8x faster), else fp32. fp16 needs a GPU.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for the model.")
@click.option("--compile", "compile_model", is_flag=True,
              help="Compile the networks (torch.compile, static shapes): slow start, faster frames on long videos.")
@click.option("--find-best-frame", is_flag=True,
              help="Use as reference the driving frame whose pose best matches the source (a first, cheap pass "
              "over the driving video), as the FOMM demo does.")
@click.option("--best-frame-by", type=click.Choice(["landmarks", "keypoints"]), default=None,
              help="How poses are compared for --find-best-frame (implies it): face landmarks (needs the 'face' "
              "extra) or the model's own keypoints (any subject). Default: landmarks when face-alignment is "
              "installed, else keypoints.")
@click.option("--landmarks-weights", type=click.Path(file_okay=False, exists=True), default=None, metavar="DIR",
              help="Folder holding face-alignment's weight files (s3fd-619a316812.pth, 2DFAN4-cd938726ad.zip) "
              "when they are not in torch hub's cache and cannot be downloaded.")
@click.option("--source-box", default=None, metavar="auto|x,y,w,h",
              help="Animate only this square of the source (a box is made square around its centre) and paste "
              "each result back into the full image with a feathered edge: the output keeps the source's size "
              "and every pixel outside the box. auto: the square around the face (with face-alignment) or "
              "around the model's keypoints.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@json_option
@quiet_option
def run(inputs, output, checkpoint, config, align_corners, batch_size, device, precision, threads, landmarks_weights,
        compile_model, overwrite, as_json, quiet, **job_options):
    """Animate SOURCE image(s) with the motion of the DRIVING video (or folder of frames).

    \b
    Examples:
      animate run face.png speech.mp4 -o result.mp4
      animate run a.png b.png c.png dance.mp4 -o results/
      animate run face.png speech.mp4 --checkpoint vox-cpk.pth.tar --config vox-256
      animate run face.png speech.mp4 --find-best-frame
      animate run portrait.jpg speech.mp4 --source-box auto -o portrait_talks.mp4
    """
    from animate_cli.animation import check_inputs, plan_outputs, run_animation
    from animate_cli.errors import BadInputError

    if len(inputs) < 2:
        raise BadInputError("need at least one SOURCE image and a DRIVING video")
    sources, driving = [Path(p) for p in inputs[:-1]], Path(inputs[-1])
    request = build_request(sources, driving, plan_outputs(sources, driving, output), job_options,
                            batch_size=batch_size, overwrite=overwrite, landmarks_weights=landmarks_weights)
    check_inputs(request)  # every bad input is reported before the model is loaded

    from animate_cli.checkpoint import load_checkpoint, resolve_checkpoint
    from animate_cli.pipeline import Animator, configure_threads, resolve_device

    configure_threads(threads)
    target = resolve_device(device)
    checkpoint_path = resolve_checkpoint(checkpoint)
    model = load_checkpoint(checkpoint_path, config=config, align_corners=align_corners)
    animator = Animator(model, target, precision, compile=compile_model)
    with frame_progress("animating", quiet) as advance:
        results = run_animation(request, animator, checkpoint=str(checkpoint_path), progress=advance)
    for result in results:
        if as_json:
            click.echo(json.dumps(result.to_json()))
        elif not quiet:
            chosen = f", best frame {result.ref_frame}" if request.find_best_frame else ""
            click.echo(f"wrote {result.output} ({result.frames} frames, {result.fps:.1f} frames/s{chosen})", err=True)

