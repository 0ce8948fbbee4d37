"""``animate batch`` as a library call: many (source, driving, output) jobs through one loaded model.

Jobs come from a manifest (CSV or JSON lines, see :func:`read_manifest`) or from a glob of source images and one
driving video (:func:`specs_from_sources`). Each is turned into a one-source :class:`RunRequest` by the caller and
run by :func:`run_job`: the inputs are checked, then :func:`run_animation` does the work. A job that fails is
recorded as failed and the caller goes on with the next; outputs are written atomically, so an interrupted batch
leaves only finished files and ``skip_existing`` resumes it.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from animate_cli.errors import AnimateError, BadInputError, MediaError

if TYPE_CHECKING:  # the CLI imports this module for JOB_OPTIONS at start-up, which must not load torch
    from animate_cli.animation import RunRequest, RunResult
    from animate_cli.pipeline import Animator

#: Columns (CSV) or keys (JSON lines) every manifest row needs.
REQUIRED_FIELDS = ("source", "driving", "output")
#: Per-job options a row may set, named after ``animate run``'s options (a row may spell them with dashes).
JOB_OPTIONS = (
    "relative", "adapt_scale", "ref_frame", "fit", "driving_box", "background", "layout", "output_size", "no_audio",
    "find_best_frame", "best_frame_by", "source_box",
)
#: Suffixes read as JSON lines; anything else is CSV unless its first row starts with '{'.
JSON_LINES_SUFFIXES = (".jsonl", ".ndjson", ".json")

Status = Literal["ok", "failed", "skipped"]


@dataclass(frozen=True)
class JobSpec:
    """One job as written by the user, before its options are checked.

    ``where`` says where it came from in messages ("jobs.csv line 4", or the source for a glob); ``options``
    holds the row's raw values for :data:`JOB_OPTIONS` that it sets (absent, empty or null cells are left out).
    """

    where: str
    source: Path
    driving: Path
    output: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchJob:
    """A checked job: its 1-based number in the batch and the one-source request that runs it."""

    number: int
    spec: JobSpec
    request: RunRequest


@dataclass(frozen=True)
class JobOutcome:
    """What became of one job. ``trace`` (a failure's traceback) is for ``--debug``; it is text, not the exception,
    so a long batch does not keep every failed job's frames alive through tracebacks."""

    job: BatchJob
    status: Status
    error: str | None = None
    result: RunResult | None = None
    trace: str | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` line: job, source, driving, output, status, error, then the run result's fields if ok."""
        report: dict[str, Any] = {
            "job": self.job.number,
            "source": str(self.job.spec.source),
            "driving": str(self.job.spec.driving),
            "output": self.job.spec.output,
            "status": self.status,
            "error": self.error,
        }
        if self.result is not None:
            report.update(self.result.to_json())
        return report


# ------------------------------------------------------------------------------------------------ manifests
def read_manifest(path: str | os.PathLike[str]) -> list[JobSpec]:
    """The jobs of a CSV (header row ``source,driving,output[,option...]``) or JSON-lines manifest.

    Blank lines and lines starting with ``#`` are skipped. Relative paths are relative to the manifest's folder.
    File names that are not UTF-8 survive in CSV manifests (read with ``surrogateescape``, as the OS names them).

    Raises:
        BadInputError: the manifest is missing, unreadable, malformed, names an unknown column, misses a
            required field, holds no job, or two jobs write the same output.
    """
    from animate_cli.media.common import require_input_file

    manifest = require_input_file(path)
    try:
        # utf-8-sig: spreadsheets often start CSV files with a byte-order mark
        text = manifest.read_text(encoding="utf-8-sig", errors="surrogateescape")
    except OSError as error:
        raise BadInputError(f"{path}: cannot read ({error.strerror or error})") from None
    json_lines = manifest.suffix.lower() in JSON_LINES_SUFFIXES or text.lstrip().startswith("{")
    rows = _json_rows(text, manifest) if json_lines else _csv_rows(text, manifest)
    specs = [_spec(row, f"{manifest} line {line}", manifest.parent) for line, row in rows]
    if not specs:
        raise BadInputError(f"{path}: the manifest holds no jobs")
    check_distinct_outputs(specs)
    return specs


def _json_rows(text: str, manifest: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise BadInputError(f"{manifest} line {number}: not valid JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise BadInputError(f"{manifest} line {number}: expected a JSON object, got {type(row).__name__}")
        yield number, row


def _csv_rows(text: str, manifest: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text), skipinitialspace=True)
    header: list[str] | None = None
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells) or cells[0].lstrip().startswith("#"):
                continue
            if header is None:
                header = cells
                continue
            if len(cells) > len(header):
                raise BadInputError(f"{manifest} line {reader.line_num}: {len(cells)} cells but {len(header)} columns")
            yield reader.line_num, dict(zip(header, cells))
    except csv.Error as error:
        raise BadInputError(f"{manifest} line {reader.line_num}: not valid CSV ({error})") from None


def _spec(row: dict[str, Any], where: str, folder: Path) -> JobSpec:
    """A row (keys as written) -> a JobSpec: keys normalised, fields checked, paths made relative to ``folder``."""
    values: dict[str, Any] = {}
    for key, value in row.items():
        name = str(key).strip().lower().replace("-", "_")
        if name not in REQUIRED_FIELDS and name not in JOB_OPTIONS:
            known = ", ".join((*REQUIRED_FIELDS, *JOB_OPTIONS))
            raise BadInputError(f"{where}: unknown column '{key}' (known: {known})")
        if isinstance(value, str):
            value = value.strip()
        if value is not None and value != "":  # an empty cell or a null keeps the command line's value
            values[name] = value
    paths = {}
    for name in REQUIRED_FIELDS:
        value = values.pop(name, None)
        if not isinstance(value, str):
            raise BadInputError(f"{where}: needs a '{name}' path" + ("" if value is None else ", as a string"))
        paths[name] = _beside(folder, value)
    return JobSpec(where, Path(paths["source"]), Path(paths["driving"]), paths["output"], values)


def _beside(folder: Path, value: str) -> str:
    """``value`` read relative to the manifest's ``folder`` (joined as text, so an output's trailing / survives)."""
    if os.path.isabs(value) or folder == Path("."):
        return value
    return os.path.join(folder, value)


def specs_from_sources(patterns: Iterable[str], driving: Path, folder: str) -> list[JobSpec]:
    """One job per file matching the glob ``patterns``, each writing ``<source>_<driving>.mp4`` into ``folder``.

    Raises:
        BadInputError: a pattern matches no file, or ``folder`` is not an existing, writable folder.
    """
    from animate_cli.animation import default_output_name
    from animate_cli.media.common import require_output_folder
    from animate_cli.media.video import natural_key

    require_output_folder(Path(folder), folder)
    sources: dict[str, None] = {}  # in order, once each when patterns overlap
    for pattern in patterns:
        matches = sorted((m for m in glob.glob(pattern) if os.path.isfile(m)), key=natural_key)
        if not matches:
            raise BadInputError(f"no file matches '{pattern}'")
        sources.update(dict.fromkeys(matches))
    specs = [
        JobSpec(source, Path(source), driving, os.path.join(folder, default_output_name(Path(source), driving)))
        for source in sources
    ]
    check_distinct_outputs(specs)
    return specs


def check_distinct_outputs(specs: Iterable[JobSpec]) -> None:
    """Refuse two jobs writing the same file: the second would fail, or silently replace the first."""
    seen: dict[str, JobSpec] = {}
    for spec in specs:
        key = os.path.normcase(os.path.abspath(spec.output))
        if key in seen:
            raise BadInputError(f"{spec.where}: writes {spec.output}, as {seen[key].where} does already")
        seen[key] = spec


# ------------------------------------------------------------------------------------------------ running
def output_exists(output: str) -> bool:
    """Whether ``output`` was written already: the file, or any numbered frame of a PNG folder or pattern."""
    from animate_cli.media.writer import existing_frames, output_kind

    try:
        kind = output_kind(output)
    except MediaError:
        return False  # not a valid output: the job itself will say why
    if kind in ("png-folder", "png-pattern"):
        return bool(existing_frames(kind, Path(output)))
    return Path(output).exists()


def run_job(
    job: BatchJob,
    animator: Animator,
    checkpoint: str | None,
    skip_existing: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
) -> JobOutcome:
    """Run one job; its failure is returned, not raised. Ctrl-C and SIGTERM still stop the batch.

    ``skip_existing``: an output that exists already is left alone (status "skipped").
    """
    from animate_cli.animation import check_inputs, run_animation

    if skip_existing and output_exists(job.spec.output):
        return JobOutcome(job, "skipped")
    try:
        check_inputs(job.request)
        [result] = run_animation(job.request, animator, checkpoint=checkpoint, progress=progress)
    except Exception as error:  # noqa: BLE001 - a bug met by one job must not cost the others their results
        message = str(error) if isinstance(error, AnimateError) else f"internal error: {type(error).__name__}: {error}"
        return JobOutcome(job, "failed", error=message, trace="".join(traceback.format_exception(error)))
    return JobOutcome(job, "ok", result=result)
