"""``animate keypoints``: export and show what the model sees. Parses options, calls :mod:`animate_cli.inspection`."""

from __future__ import annotations

import json

import click

from animate_cli.cli import EXIT_CODES_HELP
from animate_cli.cli.options import checkpoint_options, device_option, json_option, quiet_option
from animate_cli.cli.progress import frame_progress

PANEL_NAMES = "masks,occlusion,flow,deformed,result"
# --visualize given without a path: a name is derived from the input
_DEFAULT_VISUAL = "auto"


def parse_panels(value: str | None) -> tuple[str, ...]:
    """'masks,flow' -> ('masks', 'flow'); the names are checked with the other inputs."""
    if value is None:
        return ()
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    if not names:
        raise click.BadParameter(f"expected a list such as {PANEL_NAMES}", param_hint="--show")
    return names


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("input_path", metavar="INPUT")
@click.option("-o", "--output", default=None, metavar="FILE.json|FILE.npz",
              help="Keypoints of every frame: JSON (one entry per frame) or NPZ (arrays), by the suffix. "
              "Default: <input>_keypoints.json, unless only --visualize is asked for.")
@click.option("--visualize", "visualize", is_flag=False, flag_value=_DEFAULT_VISUAL, default=None,
              metavar="[PATH]",
              help="Also draw the keypoints over the frames (a colour per keypoint, the jacobian's axes as "
              "lines) into PATH: a video, folder/ or name%05d.png (a .png for an image INPUT). "
              "Default PATH: <input>_keypoints.mp4 (.png for an image).")
@click.option("--trails", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="Draw each keypoint's positions in the N previous frames as dots.")
@click.option("--source", default=None, metavar="IMAGE",
              help="Show, beside each frame, how the model would animate IMAGE with it (relative motion from "
              "the first frame, as 'animate run' does). Implies --visualize.")
@click.option("--show", default=None, metavar="LIST",
              help=f"Panels drawn with --source, comma-separated from {PANEL_NAMES}: the K+1 motion masks "
              "(background black), the occlusion map (white = visible), the dense flow (hue = direction, "
              "saturation = length), the source deformed by the flow, the result. Default: all.")
@checkpoint_options
@click.option("--fit", type=click.Choice(["crop", "pad", "stretch"]), default="crop", show_default=True,
              help="How frames are brought to the model's square size (pixel coordinates are in that square).")
@device_option
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True, help="Frames per model call.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@json_option
@quiet_option
def keypoints(input_path, output, visualize, trails, source, show, checkpoint, config, align_corners, fit, device,
              batch_size, overwrite, as_json, quiet):
    """Detect the model's keypoints in every frame of INPUT (an image, a video or a folder of frames).

    \b
    Pixel coordinates are in the model's SxS frame after --fit, with the
    centres of the outer pixels at 0 and S-1 (the model's [-1, 1] with
    align-corners, as the dense motion network reads them). Each keypoint also
    has its jacobian (first-order models) and its heatmap covariance (its
    spread, in [-1, 1] units).

    \b
    Examples:
      animate keypoints driving.mp4 -o kp.json
      animate keypoints driving.mp4 -o kp.npz --visualize kp.mp4 --trails 5
      animate keypoints driving.mp4 --source face.png --show masks,flow,deformed
    """
    from pathlib import Path

    from animate_cli.inspection import InspectRequest, check_inspect_inputs, inspect, is_image_input

    input_file = Path(input_path)
    stem = input_file.stem if input_file.is_file() else input_file.name
    panels = parse_panels(show)
    if source is not None and not panels:
        panels = tuple(PANEL_NAMES.split(","))
    if source is not None and visualize is None:
        visualize = _DEFAULT_VISUAL
    if visualize == _DEFAULT_VISUAL:
        visualize = f"{stem}_keypoints{'.png' if is_image_input(input_file) else '.mp4'}"
    if output is None and visualize is None:
        output = f"{stem}_keypoints.json"
    request = InspectRequest(
        input=input_file,
        data_output=None if output is None else Path(output),
        visual_output=visualize,
        fit=fit,
        batch_size=batch_size,
        trails=trails,
        source=None if source is None else Path(source),
        panels=panels,
        overwrite=overwrite,
    )
    check_inspect_inputs(request)  # every bad input is reported before the model is loaded

    from animate_cli.checkpoint import load_checkpoint, resolve_checkpoint
    from animate_cli.pipeline import resolve_device

    target = resolve_device(device)
    checkpoint_path = resolve_checkpoint(checkpoint)
    model = load_checkpoint(checkpoint_path, config=config, align_corners=align_corners, device=target)
    with frame_progress("keypoints", quiet) as advance:
        result = inspect(request, model, target, checkpoint=str(checkpoint_path), progress=advance)
    if as_json:
        click.echo(json.dumps(result.to_json()))
    elif not quiet:
        for path in (result.data_output, result.visual_output):
            if path is not None:
                click.echo(f"wrote {path} ({result.frames} frames)", err=True)
