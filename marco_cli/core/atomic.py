"""The two ways marco writes a file, so a crash or a full disk never costs
the user what was there before.

- ``write_text_atomic``: replace a file all at once (temp file beside it,
  fsync, rename). A crash, a full disk or a failed rename leaves the old file
  as it was and no temp file behind. The new file keeps the old one's
  permissions (a 0600 conversation stays 0600), and a symlink is written
  through: its target is replaced, the link stays a link.
- ``DurableAppender``: append whole records to a log-like file (``marco eval
  --out``), each flushed and fsync'd; a write that fails is cut back off, so
  the file never ends in half a record, and a file that this appender created
  and could not write a single record to is removed again.

The caller turns the ``OSError`` into its own typed error.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path


def write_text_atomic(path: Path, text: str) -> None:
    target = _through_symlinks(Path(path))
    directory = target.parent if str(target.parent) else Path(".")
    mode = _mode_for(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # mkstemp's 0600 is for the temp file only
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _through_symlinks(path: Path) -> Path:
    """The file a (chain of) symlink(s) points to; renaming onto the link
    itself would replace the link with a plain file."""
    if not path.is_symlink():
        return path
    return Path(os.path.realpath(path))


def _mode_for(target: Path) -> int:
    """The existing file's permission bits, else what a new file gets."""
    try:
        st = target.stat()
    except FileNotFoundError:
        return 0o666 & ~_umask()
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(21, "Is a directory", str(target))
    return stat.S_IMODE(st.st_mode)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class DurableAppender:
    """Appends byte records to ``path``; each ``append`` is on disk when it returns.

    ``keep_bytes`` cuts the file to that length first (a torn last record
    from a killed run). Raises ``OSError`` like ``open`` and ``write`` do.
    Unbuffered (plain ``os.write``): no library buffer can hold back, or
    later flush, part of a record that failed.
    """

    def __init__(self, path: Path, *, keep_bytes: int | None = None) -> None:
        self.path = path
        self._created = not path.exists()
        self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        self._records = 0
        self._failed = False
        try:
            size = os.lseek(self._fd, 0, os.SEEK_END)
            if keep_bytes is not None and size > keep_bytes:
                os.ftruncate(self._fd, keep_bytes)
                size = keep_bytes
            if size > 0 and os.pread(self._fd, 1, size - 1) != b"\n":
                self.append(b"\n")  # a sound last line missing its newline
        except BaseException:
            self.close()
            raise

    def append(self, data: bytes) -> None:
        size = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            os.fsync(self._fd)
        except BaseException:
            self._failed = True
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, size)  # no half record left behind
            raise
        self._records += 1

    def close(self) -> None:
        if self._fd < 0:
            return
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = -1
        if self._created and self._failed and self._records == 0:
            # nothing of ours made it to disk: leave no empty file behind
            with contextlib.suppress(OSError):
                if self.path.stat().st_size == 0:
                    self.path.unlink()
