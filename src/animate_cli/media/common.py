"""Checks and messages shared by the image and video readers and writers."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from animate_cli.errors import MediaError


def require_input_file(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as a :class:`Path` if it names a readable, non-empty regular file.

    Doing these checks ourselves, before any decoder sees the file, turns the most common mistakes into one
    precise line instead of whatever the decoder makes of a missing or empty file.
    """
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise MediaError(f"{path}: no such file") from None
    except PermissionError:
        raise MediaError(f"{path}: permission denied") from None
    except OSError as exc:
        raise MediaError(f"{path}: cannot access ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise MediaError(f"{path}: is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise MediaError(f"{path}: is not a regular file")
    if st.st_size == 0:
        raise MediaError(f"{path}: is empty")
    if not os.access(p, os.R_OK):
        raise MediaError(f"{path}: permission denied")
    return p


def require_output_folder(folder: Path, shown: str | os.PathLike[str]) -> None:
    """Raise :class:`MediaError` unless ``folder`` exists, is a folder, and we may create files in it.

    ``shown`` is the output path as the user gave it, so the message names what they typed.
    """
    if not folder.exists():
        raise MediaError(f"{shown}: output folder {folder} does not exist")
    if not folder.is_dir():
        raise MediaError(f"{shown}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise MediaError(f"{shown}: cannot write to folder {folder} (permission denied)")


def ffmpeg_reason(exc: BaseException) -> str:
    """The human part of an FFmpeg/OS error, without the errno number and file name PyAV adds."""
    reason = getattr(exc, "strerror", None)
    return str(reason) if reason else str(exc) or type(exc).__name__


def write_error(path: str | os.PathLike[str], exc: OSError) -> MediaError:
    """The :class:`MediaError` for an OS-level failure while writing ``path`` (disk full above all)."""
    if exc.errno == errno.ENOSPC:
        return MediaError(f"{path}: no space left on device while writing")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return MediaError(f"{path}: permission denied while writing")
    return MediaError(f"{path}: cannot write ({ffmpeg_reason(exc)})")


def publish(temporary: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Rename a finished temporary file or folder into place with the permissions a plain ``open`` would give.

    ``mkstemp``/``mkdtemp`` create 0600/0700 entries; outputs must honour the user's umask like any other file.
    """
    umask = os.umask(0)
    os.umask(umask)
    mode = (0o777 if os.path.isdir(temporary) else 0o666) & ~umask
    os.chmod(temporary, mode)
    os.replace(temporary, target)
