"""``animate data``: synthetic data sets with exact ground truth.

Only click and the standard library are imported here; numpy, Pillow and PyAV load when a command runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.group("data")
def data() -> None:
    """Make data sets for training and evaluating the models."""


@data.command("synth")
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--size", type=int, default=256, show_default=True, help="Frame width and height in pixels.")
@click.option("--videos", type=int, default=100, show_default=True, help="Number of clips (train + test).")
@click.option("--frames", type=int, default=64, show_default=True, help="Frames per clip.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed: the same seed gives the same files.")
@click.option(
    "--test-fraction",
    type=float,
    default=0.2,
    show_default=True,
    help="Share of clips in test/ (at least 2 with --pairs).",
)
@click.option(
    "--pairs", type=int, default=0, show_default=True, help="Cross-identity targets to render from test clips."
)
@click.option(
    "--format",
    "video_format",
    type=click.Choice(["png", "mp4"]),
    default="png",
    show_default=True,
    help="Frame folders of lossless PNGs, or H.264 mp4 files.",
)
@click.option("--fps", type=float, default=25.0, show_default=True, help="Frame rate (motion speed and mp4 rate).")
@click.option("--overwrite", is_flag=True, help="Replace the data set in a non-empty OUT_DIR.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead of a line.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def synth(
    out_dir: Path,
    size: int,
    videos: int,
    frames: int,
    seed: int,
    test_fraction: float,
    pairs: int,
    video_format: str,
    fps: float,
    overwrite: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Render procedural articulated puppets into OUT_DIR (FOMM layout) with exact ground truth.

    \b
    Writes train/ and test/ (a folder of PNG frames, or an mp4, per clip) with a
    .npz of ground truth beside each clip (part affines, joints, part labels,
    identity), dataset.json, and with --pairs, test/pairs.csv plus the
    cross-identity targets under pairs/.

    \b
    Example:
      animate data synth data/puppets --size 128 --videos 200 --frames 48 --pairs 20
    """
    from animate_cli.data.synth import SynthOptions, synthesize

    options = SynthOptions(
        size=size,
        videos=videos,
        frames=frames,
        seed=seed,
        test_fraction=test_fraction,
        pairs=pairs,
        format=video_format,
        fps=fps,
    )
    if quiet or not sys.stderr.isatty():
        summary = synthesize(out_dir, options, overwrite=overwrite)
    else:
        from rich.console import Console
        from rich.progress import Progress

        with Progress(console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("rendering clips", total=options.videos + options.pairs)
            summary = synthesize(
                out_dir, options, overwrite=overwrite, progress=lambda done, total: bar.update(task, completed=done)
            )
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(
            f"wrote {summary['train']} train + {summary['test']} test clips and {summary['pairs']} pair targets "
            f"({summary['frames']} frames, {summary['size']}x{summary['size']}, {summary['format']}) "
            f"to {summary['out_dir']} in {summary['seconds']:.1f} s"
        )
