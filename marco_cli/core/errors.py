"""Typed errors and exit codes.

The library raises these; only the CLI turns them into a one-line message on
stderr and an exit code (one error boundary, as in httpie's ``ExitStatus``).
Every message is written for a user: what went wrong and what to do.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    INTERRUPTED = 130


class MarcoError(Exception):
    """Base of every error marco reports to a user."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class UsageError(MarcoError):
    """Bad input from the user: empty question, nonsense option value."""

    exit_code = ExitCode.USAGE


class InputError(UsageError):
    """Unreadable input, e.g. stdin that is not UTF-8."""


class ConfigError(MarcoError):
    """A broken configuration or registry file; the message names file and key."""

    exit_code = ExitCode.USAGE


class UnknownModelError(UsageError):
    """A model name the registry does not know."""


class ModelNotFoundError(MarcoError):
    """The model's GGUF file is not on disk."""


class ModelLoadError(MarcoError):
    """The file exists but llama.cpp cannot load it (not a GGUF, corrupt, ...)."""


class ContextOverflowError(MarcoError):
    """The prompt does not fit in the model's context window."""


class DownloadError(MarcoError):
    """A model download failed (offline, unreachable hub, bad checksum, disk full)."""


class BackendError(MarcoError):
    """The inference backend failed at run time."""


class ConversationFileError(MarcoError):
    """A chat conversation file that cannot be read, parsed or written; names the file."""


class TreeFileError(UsageError):
    """A saved search tree (``marco replay FILE``) that cannot be read; the
    message names the file and what is wrong with it."""


class TreeSaveError(MarcoError):
    """``--save-tree`` could not write its file (the old file, if any, is kept)."""


class OutputError(MarcoError):
    """A result could not be written: stdout closed or on a full disk, an
    output file on a full disk. The message names where; exit 1."""
