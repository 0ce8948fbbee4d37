"""``animate train``: train a model on a folder of clips (only click and the standard library at import)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from animate_cli.cli.options import quiet_option


@contextlib.contextmanager
def _step_progress(quiet: bool) -> Iterator[Any]:
    """Yields (on_start, on_step) callbacks driving a rich bar with the current losses on a terminal's stderr."""
    if quiet or not sys.stderr.isatty():
        yield None, None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[losses]}"),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("train", total=None, losses="")

        def on_start(info) -> None:
            progress.update(task, completed=info.start_step, total=info.final_step)

        def on_step(report) -> None:
            shown = " ".join(f"{name} {value:.4g}" for name, value in report.losses.items())
            progress.update(task, completed=report.step, losses=f"{report.seconds_per_step:.2f} s/step  {shown}")

        yield on_start, on_step


@click.command("train")
@click.option("--config", "config", metavar="NAME|PATH", required=True,
              help="A preset (vox-256, taichi-256, ...) or a YAML config in the published layout.")
@click.option("--data", "data_dir", metavar="DIR", required=True,
              help="Data set in the FOMM layout: DIR/train/ holds one frame folder or video file per clip.")
@click.option("--out", "out_dir", metavar="RUN_DIR", required=True,
              help="Run folder: checkpoint.safetensors (resumed if present), model.safetensors, log.jsonl, panels/.")
@click.option("--max-steps", type=click.IntRange(min=1), default=None,
              help="Stop once the run has made this many steps in all (resumed steps count).")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Stop after this many epochs in all. Default: train_params.num_epochs.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Global batch (split over torchrun processes). Default: train_params.batch_size.")
@click.option("--accumulate", type=click.IntRange(min=1), default=1, show_default=True,
              help="Split each batch into N micro-batches (less memory; BatchNorm statistics per micro-batch).")
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda|cuda:N",
              help="Where to train; auto takes CUDA when present (under torchrun, this process's LOCAL_RANK).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="auto: bf16 autocast on CUDA, fp32 on CPU.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Data-loading processes. Default: min(4, CPUs); 0 loads in the training process.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Write the checkpoint every N steps (and always at the end or when stopped).")
@click.option("--keep-every", type=click.IntRange(min=1), default=None, metavar="N",
              help="Also keep the model of every N-th step as RUN_DIR/snapshots/model_step_<step>.safetensors "
              "(model.safetensors is replaced at each save), to evaluate or ship an earlier step.")
@click.option("--visualize-every", type=click.IntRange(min=1), default=500, show_default=True,
              help="Write a panel PNG to RUN_DIR/panels/ every N steps (and at the end).")
@click.option("--log-every", type=click.IntRange(min=1), default=10, show_default=True,
              help="Append losses to RUN_DIR/log.jsonl every N steps.")
@click.option("--reconstruction-loss", type=click.Choice(["auto", "vgg19", "l1"]), default="auto", show_default=True,
              help="vgg19: perceptual loss (needs local VGG19 weights); l1: pixel pyramid; auto: vgg19 if found.")
@click.option("--vgg19", "vgg19_weights", metavar="PATH", default=None,
              help="VGG19 weights (torchvision layout, .pth or .safetensors). Default: $ANIMATE_VGG19_WEIGHTS, "
              "then ~/.cache/animate-cli/vgg19.safetensors or vgg19.pth.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the initial weights and of the sampling.")
@quiet_option
def train(
    config: str,
    data_dir: str,
    out_dir: str,
    max_steps: int | None,
    epochs: int | None,
    batch_size: int | None,
    accumulate: int,
    device: str,
    precision: str,
    workers: int | None,
    checkpoint_every: int,
    keep_every: int | None,
    visualize_every: int,
    log_every: int,
    reconstruction_loss: str,
    vgg19_weights: str | None,
    seed: int,
    quiet: bool,
) -> None:
    """Train a keypoint detector and generator on clips in DIR/train (FOMM's objective).

    Ctrl-C or SIGTERM saves the checkpoint before stopping; rerunning the same command resumes.
    Several GPUs: torchrun --nproc-per-node N -m animate_cli train ...

    \b
    Example:
      animate train --config vox-256 --data data/vox --out runs/vox --max-steps 100000
    """
    from animate_cli.training.trainer import train as run_training

    def announce(info) -> None:
        if not quiet:
            click.echo(
                f"training {info.config} on {info.data_dir}: {info.clips} clips, {info.steps_per_epoch} steps/epoch, "
                f"batch {info.batch_size}, {info.device} {info.precision}, "
                f"reconstruction loss {info.reconstruction_loss}"
                + (f", resuming at step {info.start_step}" if info.resumed else ""),
                err=True,
            )

    with _step_progress(quiet) as (progress_start, progress_step):

        def on_start(info) -> None:
            announce(info)
            if progress_start is not None:
                progress_start(info)

        result = run_training(
            config, Path(data_dir), Path(out_dir), max_steps=max_steps, epochs=epochs, batch_size=batch_size,
            accumulate=accumulate, device=device, precision=precision, workers=workers,
            checkpoint_every=checkpoint_every, keep_every=keep_every, visualize_every=visualize_every,
            log_every=log_every, reconstruction_loss=reconstruction_loss, vgg19_weights=vgg19_weights, seed=seed,
            on_start=on_start, on_step=progress_step,
        )
    if not quiet and result.rank == 0:
        shown = ", ".join(f"{name} {value:.4g}" for name, value in result.losses.items())
        click.echo(
            f"trained to step {result.steps} ({result.epochs:g} epochs) in {result.seconds:.1f} s"
            + (f": {shown}" if shown else "")
        )
        click.echo(f"checkpoint: {result.checkpoint}")
        click.echo(f"model: {result.model}")
