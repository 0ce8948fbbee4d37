"""``animate crop``: cut square driving clips around the subject. Parses options, calls :mod:`animate_cli.cropping`."""

from __future__ import annotations

import json

import click

from animate_cli.cli import EXIT_CODES_HELP
from animate_cli.cli.options import checkpoint_options, device_option, json_option, quiet_option
from animate_cli.cli.progress import frame_progress


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("driving", metavar="DRIVING")
@click.option("-o", "--output", default=None, metavar="PATH",
              help="The cropped clip (.mp4 .webm .mkv .gif, folder/ or name%05d.png). Several segments: "
              "<stem>_001<suffix>, <stem>_002<suffix>, ...")
@click.option("--print-boxes", is_flag=True,
              help="Print the regions as JSON ([{start, end, start_time, end_time, box: [x, y, w, h]}], end "
              "exclusive); without -o nothing is written.")
@click.option("--detector", type=click.Choice(["auto", "faces", "keypoints"]), default="auto", show_default=True,
              help="How the subject is found: face boxes (needs the 'face' extra) or the extent of the model's "
              "keypoints on the whole frame (any subject). auto: faces when face-alignment is installed.")
@click.option("--margin", type=click.FloatRange(min=0), default=0.1, show_default=True,
              help="Room added on each side of the subject, as a share of its size.")
@click.option("--iou-threshold", type=click.FloatRange(min=0, max=1), default=0.25, show_default=True,
              help="A new segment starts when the subject's box overlaps the segment's first box less than this "
              "(intersection over union).")
@click.option("--min-frames", type=click.IntRange(min=1), default=10, show_default=True,
              help="Drop segments shorter than this.")
@click.option("--size", type=click.IntRange(min=8), default=256, show_default=True,
              help="Side of the square output clips, in pixels.")
@click.option("--no-audio", is_flag=True,
              help="Do not copy the driving video's sound (by default each clip gets the sound of its span).")
@click.option("--landmarks-weights", type=click.Path(file_okay=False, exists=True), default=None, metavar="DIR",
              help="Folder holding face-alignment's weight files (s3fd-619a316812.pth, 2DFAN4-cd938726ad.zip) "
              "when they are not in torch hub's cache and cannot be downloaded.")
@checkpoint_options
@device_option
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True, help="Frames per model call.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@json_option
@quiet_option
def crop(driving, output, print_boxes, detector, margin, iou_threshold, min_frames, size, no_audio, landmarks_weights,
         checkpoint, config, align_corners, device, batch_size, overwrite, as_json, quiet):
    """Find the subject through DRIVING and cut square clips around it, ready to drive 'animate run'.

    \b
    The frames are split into segments where the subject stays in place; each
    segment gets one fixed square region (the union of the subject's boxes
    over the segment, plus --margin), so the camera does not move in the clip.
    Each clip keeps the sound of its span, in sync.

    \b
    Examples:
      animate crop interview.mp4 -o face.mp4
      animate crop dance.mp4 -o dancer.mp4 --detector keypoints --margin 0.2
      animate crop interview.mp4 --print-boxes
    """
    from pathlib import Path

    from animate_cli.cropping import CropOptions, crop_video, resolve_detector, subject_box_finder
    from animate_cli.errors import BadInputError
    from animate_cli.media.video import probe
    from animate_cli.media.writer import check_output

    if output is None and not print_boxes:
        raise BadInputError("give -o OUT for the cropped clip, or --print-boxes to only print the regions")
    driving_path = Path(driving)
    probe(driving_path)  # a bad driving video is reported before any model is loaded
    if output is not None:
        check_output(output, overwrite=True)  # the kind and folder; existing files are checked per segment
    method = resolve_detector(detector)
    if method == "faces":
        from animate_cli.landmarks import require_face_alignment

        require_face_alignment("--detector faces")

    from animate_cli.pipeline import resolve_device

    target = resolve_device(device)
    model = None
    if method == "keypoints":
        from animate_cli.checkpoint import load_checkpoint, resolve_checkpoint

        model = load_checkpoint(resolve_checkpoint(checkpoint), config=config, align_corners=align_corners,
                                device=target)
    find_boxes = subject_box_finder(method, model, target, None if landmarks_weights is None else Path(landmarks_weights),
                                    "--detector faces")
    options = CropOptions(margin=margin, iou_threshold=iou_threshold, min_frames=min_frames, size=size,
                          batch_size=batch_size, audio=not no_audio, overwrite=overwrite)
    with frame_progress("cropping", quiet) as advance:
        result = crop_video(driving_path, output, find_boxes, options, progress=advance)
    if print_boxes:
        click.echo(json.dumps([region.to_json() for region in result.regions]))
    if as_json:
        click.echo(json.dumps(result.to_json()))
    elif not quiet:
        for path, region in zip(result.outputs, result.regions):
            click.echo(f"wrote {path} (frames {region.start}-{region.end - 1}, box {region.x},{region.y} "
                       f"{region.side}x{region.side})", err=True)
