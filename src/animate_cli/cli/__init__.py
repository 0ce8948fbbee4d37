"""The ``animate`` command line.

Subcommands live one per module and are imported only when invoked (or listed by ``--help``); each module
imports just click at top level, so start-up never pays for torch or PyAV. This module owns the mapping of
expected failures to one stderr line and an exit code.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import traceback

import click

from animate_cli import __version__
from animate_cli.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_TERMINATED, AnimateError

# name -> "module:attribute"; modules are under animate_cli.cli
SUBCOMMANDS = {
    "data": "data:data",
    "checkpoints": "checkpoints:checkpoints",
    "run": "run:run",
    "batch": "batch:batch",
    "evaluate": "evaluate:evaluate",
    "train": "train:train",
    "keypoints": "keypoints:keypoints",
    "crop": "crop:crop",
}

EXIT_CODES_HELP = """\b
Exit codes: 0 done, 2 bad usage or bad input, 1 any other failure,
130 interrupted (Ctrl-C), 143 terminated (SIGTERM)."""


class Terminated(BaseException):
    """Raised in the main thread when SIGTERM arrives, so cleanup code (temporary files) runs."""


def _raise_terminated(signum, frame):  # noqa: ARG001 - signal handler signature
    raise Terminated()


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand is needed."""

    def __init__(self, *args, lazy_subcommands: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = lazy_subcommands or {}

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_subcommands))

    def get_command(self, ctx, cmd_name):
        if cmd_name in self.lazy_subcommands:
            module_name, attribute = self.lazy_subcommands[cmd_name].split(":")
            module = importlib.import_module(f"{self.import_base}.{module_name}")
            return getattr(module, attribute)
        return super().get_command(ctx, cmd_name)

    import_base = "animate_cli.cli"


def report_failures(invoke):
    """Wrap a group's invoke: expected failures become one stderr line and an exit code."""

    def wrapped(self, ctx):
        debug = bool(ctx.params.get("debug")) or os.environ.get("ANIMATE_DEBUG") == "1"
        previous = None
        if threading_is_main():
            previous = signal.signal(signal.SIGTERM, _raise_terminated)
        try:
            return invoke(self, ctx)
        except AnimateError as error:
            if debug:
                traceback.print_exc()
            click.echo(f"error: {error}", err=True)
            ctx.exit(error.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except Terminated:
            click.echo("terminated", err=True)
            ctx.exit(EXIT_TERMINATED)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as error:  # a bug: say so in one line unless --debug asks for the traceback
            if debug:
                traceback.print_exc()
            else:
                click.echo(f"error: internal error: {type(error).__name__}: {error} (rerun with --debug for the traceback)", err=True)
            ctx.exit(EXIT_FAILURE)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    return wrapped


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


class RootGroup(LazyGroup):
    invoke = report_failures(LazyGroup.invoke)


@click.group(
    cls=RootGroup,
    lazy_subcommands=SUBCOMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES_HELP,
)
@click.version_option(__version__, "--version", prog_name="animate")
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Animate a still image with the motion of a driving video.

    \b
    Example:
      animate run source.png driving.mp4 -o result.mp4
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main() -> None:
    cli(prog_name="animate")
