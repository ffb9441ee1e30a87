"""stdout that fails in one line, and standard descriptors that are never missing.

Two faults this prevents, for every command at once:

- stdout on a full disk (``> /dev/full``) or closed (``>&-``): a write fails
  with ``ENOSPC``/``EBADF`` from deep inside Rich or ``print``. Here the one
  raw stream under ``sys.stdout`` turns such a failure into ``OutputError``,
  which the CLI's error boundary reports as one line with exit 1. A
  ``BrokenPipeError`` passes through unchanged: a reader that left
  (``| head -1``) is not an error.
- A descriptor 0, 1 or 2 that was closed when marco started: the next file
  marco opens (a model, a conversation) would get that number, and "printing
  the answer" would write into it. A closed one is filled with ``/dev/null``
  first; stdout read-only, so writing a result still fails (and says so)
  rather than vanishing.
"""

from __future__ import annotations

import errno
import io
import os
import sys

from .errors import OutputError


class StdoutWriteError(OutputError):
    """stdout itself failed (not an output file)."""


class _GuardedRaw(io.RawIOBase):
    """The file descriptor under ``sys.stdout``; write errors become ``StdoutWriteError``."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        try:
            return os.isatty(self._fd)
        except OSError:
            return False

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        try:
            return os.write(self._fd, data)
        except (BrokenPipeError, BlockingIOError):
            raise
        except OSError as exc:
            raise StdoutWriteError(_describe(exc)) from None

    def close(self) -> None:  # the descriptor belongs to the process, not to us
        super().close()


def _describe(exc: OSError) -> str:
    if exc.errno == errno.EBADF:
        return "cannot write the result: stdout is closed"
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return "cannot write the result to stdout: no space left on the device"
    return f"cannot write the result to stdout: {exc.strerror or exc}"


def _fill_closed_descriptors() -> None:
    for fd, flags in ((0, os.O_RDONLY), (1, os.O_RDONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
        except OSError:
            try:
                null = os.open(os.devnull, flags)
                if null != fd:
                    os.dup2(null, fd)
                    os.close(null)
            except OSError:
                pass


def guard_standard_streams() -> None:
    """Install the guarded stdout (once, by the console-script entry point)."""
    _fill_closed_descriptors()
    old = sys.stdout
    buffer = getattr(old, "buffer", None)
    if isinstance(buffer, io.BufferedWriter) and isinstance(buffer.raw, _GuardedRaw):
        return
    encoding = getattr(old, "encoding", None) or "utf-8"
    errors = getattr(old, "errors", None) or "strict"
    line_buffering = bool(getattr(old, "line_buffering", False))
    if old is not None:
        try:
            old.flush()
        except (OSError, ValueError):
            pass
    if sys.stderr is None:
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", line_buffering=True)
    if sys.stdin is None:
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(_GuardedRaw(1)), encoding=encoding, errors=errors, line_buffering=line_buffering
    )


def discard_stdout() -> None:
    """After stdout failed: point descriptor 1 at /dev/null so the bytes still
    buffered can be flushed at exit without a second error."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
    except OSError:
        pass
