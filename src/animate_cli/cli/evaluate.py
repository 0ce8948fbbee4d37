"""``animate evaluate``: score a model on a data set. Parses options, calls :mod:`animate_cli.evaluation`, reports.

Only click and the standard library are imported here; torch and numpy load when the command runs.
"""

from __future__ import annotations

import json

import click

from animate_cli.cli import EXIT_CODES_HELP
from animate_cli.cli.options import checkpoint_options, device_option, json_option, quiet_option
from animate_cli.cli.progress import frame_progress


@click.command(epilog=EXIT_CODES_HELP)
@checkpoint_options
@click.option("--data", "data_dir", required=True, metavar="DIR",
              help="Data set in the FOMM layout: DIR/train/, DIR/test/ hold clips (frame folders or videos).")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True,
              help="Which clips to evaluate.")
@click.option("--max-videos", type=click.IntRange(min=1), default=None, metavar="N",
              help="Evaluate at most N clips (and N pairs; the keypoint map is fitted on at most N train clips).")
@device_option
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Frames per model call.")
@click.option("-o", "--output", "out_dir", default=None, metavar="DIR",
              help="Also write DIR/report.md and DIR/examples.png (source | driving | prediction | target).")
@json_option
@quiet_option
def evaluate(checkpoint, config, align_corners, data_dir, split, max_videos, device, batch_size, out_dir, as_json, quiet):
    """Score a model: reconstruction L1 (as in the paper) and, on data with ground truth
    (animate data synth), keypoint error, dense flow error and cross-identity animation L1.

    \b
    Examples:
      animate evaluate --checkpoint first --data puppets/
      animate evaluate --checkpoint vox-cpk.pth.tar --config vox-256 --data vox/ --max-videos 20 -o report/
    """
    from animate_cli.checkpoint import load_checkpoint, resolve_checkpoint
    from animate_cli.evaluation import evaluate as run_evaluation
    from animate_cli.evaluation import plan_evaluation, summary_rows, write_report
    from animate_cli.pipeline import resolve_device

    plan = plan_evaluation(data_dir, split, max_videos)  # a bad data folder is reported before the model loads
    target = resolve_device(device)
    model = load_checkpoint(resolve_checkpoint(checkpoint), config=config, align_corners=align_corners)
    with frame_progress("evaluating", quiet) as advance:
        result = run_evaluation(model, plan, device=target, batch_size=batch_size, progress=advance)
    written = write_report(result, out_dir) if out_dir is not None else []
    if as_json:
        click.echo(json.dumps(result.to_json()))
    elif not quiet:
        rows = summary_rows(result)
        width = max(len(metric) for metric, _, _ in rows)
        value_width = max(len(value) for _, value, _ in rows)
        click.echo("\n".join(f"{metric:<{width}}  {value:>{value_width}}  {detail}" for metric, value, detail in rows))
    if not quiet:
        for note in result.notes:
            click.echo(f"note: {note}", err=True)
        for path in written:
            click.echo(f"wrote {path}", err=True)
