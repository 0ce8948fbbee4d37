"""``animate batch``: many animations with one loaded model, from a manifest or a glob of source images.

The per-job options are ``animate run``'s own click options, reused as they are: the command line sets them for
every job, and a manifest row's values are checked by the same options (same types, choices and messages).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from animate_cli.batch import JOB_OPTIONS
from animate_cli.cli import EXIT_CODES_HELP
from animate_cli.cli.options import checkpoint_options, device_option, json_option, quiet_option
from animate_cli.cli.progress import frame_progress
from animate_cli.cli.run import build_request, run

if TYPE_CHECKING:
    from animate_cli.batch import JobOutcome

# options of `animate run` that apply to the whole batch rather than to one job
BATCH_RUN_OPTIONS = ("batch_size", "precision", "threads", "landmarks_weights", "overwrite")
_RUN_PARAMS = {param.name: param for param in run.params}
# run's per-job options as a command of their own: "parsing" it with a row's values as its defaults checks and
# converts them exactly as `animate run` checks its command line
_JOB_COMMAND = click.Command("job", params=[_RUN_PARAMS[name] for name in JOB_OPTIONS])


def run_options(*names: str):
    """Give a command ``animate run``'s options ``names`` (parameter names): spelled, typed and documented once."""

    def decorate(command: click.Command) -> click.Command:
        command.params.extend(_RUN_PARAMS[name] for name in names)
        return command

    return decorate


def job_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """The per-job options with ``values`` (command-line values, CSV cells or JSON values) checked and converted
    as ``animate run`` does. Raises click.UsageError naming the bad option."""
    return _JOB_COMMAND.make_context("job", [], default_map=dict(values)).params


@run_options(*JOB_OPTIONS, *BATCH_RUN_OPTIONS)
@click.command(epilog=EXIT_CODES_HELP)
@click.argument("manifest", required=False, metavar="[MANIFEST]")
@click.option("--sources", multiple=True, metavar="GLOB",
              help="Source images as a quoted glob ('faces/*.png'), instead of a MANIFEST; repeatable. "
              "Needs --driving and -o.")
@click.option("--driving", default=None, metavar="VIDEO",
              help="The driving video (or frame folder) for every --sources image.")
@click.option("-o", "--output", default=None, metavar="FOLDER",
              help="Existing folder receiving <source>_<driving>.mp4 for each --sources image.")
@click.option("--skip-existing", is_flag=True, help="Leave jobs whose output exists alone (resume a stopped batch).")
@checkpoint_options
@device_option
@json_option
@quiet_option
@click.pass_context
def batch(ctx: click.Context, manifest: str | None, sources: tuple[str, ...], driving: str | None, output: str | None,
          skip_existing: bool, checkpoint: str | None, config: str | None, align_corners: bool | None, device: str,
          as_json: bool, quiet: bool, batch_size: int, precision: str, threads: int | None,
          landmarks_weights: str | None, overwrite: bool,
          **job_options: Any) -> None:
    """Run many animations with one loaded model: the jobs of a MANIFEST, or every --sources image.

    MANIFEST is CSV with a header row, or JSON lines (.jsonl), one job per row: source, driving, output, and
    optionally the per-job options below (relative, adapt_scale, ref_frame, fit, driving_box, background,
    layout, output_size, no_audio, find_best_frame, best_frame_by, source_box); empty cells keep the command
    line's value. Relative paths are relative to the manifest's folder. Jobs run in order; a failed job is
    reported and the others go on.

    \b
    Examples:
      animate batch jobs.csv --skip-existing
      animate batch --sources 'faces/*.png' --driving speech.mp4 -o results/ --json

    Exit status 1 when any job failed, 2 for a bad manifest or option (before any job runs).
    """
    from pathlib import Path

    from animate_cli.batch import BatchJob, read_manifest, specs_from_sources
    from animate_cli.errors import AnimateError, BadInputError

    if skip_existing and overwrite:
        raise BadInputError("--skip-existing and --overwrite contradict each other; choose one")
    if manifest is not None and (sources or driving or output):
        raise BadInputError("give a MANIFEST or --sources with --driving and -o, not both")
    if manifest is not None:
        specs = read_manifest(manifest)
    elif sources and driving and output:
        specs = specs_from_sources(sources, Path(driving), output)
    else:
        raise BadInputError("give a MANIFEST, or --sources GLOB with --driving VIDEO and -o FOLDER")

    # a bad command-line value is a usage error of its own, not every row's
    build_request([], Path(), [], job_settings(job_options), batch_size, overwrite, landmarks_weights)
    jobs = []
    for number, spec in enumerate(specs, start=1):
        try:
            settings = job_settings({**job_options, **spec.options})
            request = build_request([spec.source], spec.driving, [spec.output], settings, batch_size, overwrite,
                                    landmarks_weights)
        except click.UsageError as error:
            raise BadInputError(f"{spec.where}: {error.format_message()}") from None
        jobs.append(BatchJob(number, spec, request))

    from animate_cli.batch import run_job
    from animate_cli.checkpoint import load_checkpoint, resolve_checkpoint
    from animate_cli.pipeline import Animator, configure_threads, resolve_device

    configure_threads(threads)
    target = resolve_device(device)
    checkpoint_path = resolve_checkpoint(checkpoint)
    animator = Animator(load_checkpoint(checkpoint_path, config=config, align_corners=align_corners), target, precision)
    debug = bool(ctx.find_root().params.get("debug")) or os.environ.get("ANIMATE_DEBUG") == "1"
    outcomes = []
    try:
        for job in jobs:
            with frame_progress(f"job {job.number}/{len(jobs)}", quiet) as advance:
                outcome = run_job(job, animator, str(checkpoint_path), skip_existing=skip_existing, progress=advance)
            outcomes.append(outcome)
            if as_json:
                click.echo(json.dumps(outcome.to_json()))
            if outcome.status == "failed":
                click.echo(f"job {job.number}/{len(jobs)} failed: {outcome.error}", err=True)
                if debug:
                    click.echo(outcome.trace, err=True, nl=False)
    finally:  # also when Ctrl-C or SIGTERM stops the batch: say what was done
        if not quiet:
            print_summary(outcomes, len(jobs))
    failed = sum(outcome.status == "failed" for outcome in outcomes)
    if failed:
        raise AnimateError(f"{failed} of {len(jobs)} jobs failed")


def print_summary(outcomes: list[JobOutcome], total: int) -> None:
    """A table of the jobs run (rich on a terminal, plain text otherwise) and a count line, on stderr."""
    headers = ("job", "status", "source", "output", "frames", "seconds", "error")
    rows = [
        (
            str(outcome.job.number), outcome.status, str(outcome.job.spec.source), outcome.job.spec.output,
            *((str(outcome.result.frames), f"{outcome.result.seconds:.1f}") if outcome.result else ("", "")),
            outcome.error or "",
        )
        for outcome in outcomes
    ]
    counts = {status: sum(o.status == status for o in outcomes) for status in ("ok", "failed", "skipped")}
    totals = f"{total} jobs: " + ", ".join(f"{count} {status}" for status, count in counts.items())
    if len(outcomes) < total:
        totals += f", {total - len(outcomes)} not run"
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table()
        for header in headers:
            table.add_column(header, overflow="fold")  # paths are wrapped, never cut short with an ellipsis
        colours = {"ok": "green", "failed": "red", "skipped": "yellow"}
        for row in rows:
            # Text, not markup: a file name may hold brackets
            table.add_row(*(Text(cell, style=colours[cell] if column == 1 else "") for column, cell in enumerate(row)))
        console = Console(stderr=True)
        console.print(table)
        console.print(totals, highlight=False)
        return
    # plain: aligned columns but the last, so a long error message does not widen every line
    widths = [max(len(row[i]) for row in (headers, *rows)) for i in range(len(headers) - 1)]
    for row in (headers, *rows):
        aligned = "  ".join(cell.ljust(width) for cell, width in zip(row, widths))
        click.echo(f"{aligned}  {row[-1]}".rstrip(), err=True)
    click.echo(totals, err=True)
