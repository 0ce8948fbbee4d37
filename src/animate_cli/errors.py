"""Expected failures and their exit codes.

Every failure a user can cause or fix (a bad file, a wrong option, a checkpoint for another config) is an
:class:`AnimateError`; the CLI prints its message as one line on stderr and exits with its ``exit_code``.
Anything else is a bug and keeps its traceback under ``--debug``.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class AnimateError(Exception):
    """A failure with a message meant for the user (exit code 1)."""

    exit_code = EXIT_FAILURE


class BadInputError(AnimateError):
    """The user's input (a file, an option value, a config) cannot be used (exit code 2)."""

    exit_code = EXIT_BAD_INPUT


class ConfigError(BadInputError):
    """A config file or preset is malformed: unknown key, wrong type, missing value."""


class CheckpointError(BadInputError):
    """A checkpoint file is unreadable, unsafe, or does not fit the model config."""


class MediaError(BadInputError):
    """An image or video cannot be read or written as asked."""
