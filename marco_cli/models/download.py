"""``marco pull``'s engine: a registry entry's GGUF from the Hugging Face Hub
into ``models_dir()/NAME/FILE``, resumable and verified.

The file is written as ``FILE.<tag>.incomplete`` next to its final name (same
directory, so the last step is an atomic rename) and only renamed once its
size and sha256 check out: a crash, Ctrl-C, a dropped connection or a full
disk never leaves a half file under the final name, and the next pull resumes
where this one stopped. The files kept beside it are described in files.py.

No printing here: progress goes to a callback as ``PullProgress`` events.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import DownloadError
from .files import (  # re-exported: the API `marco models` and `marco rm` use
    LocalFile,
    confined,
    downloaded_files,
    files_to_remove,
    held_lock,
    hub_quant,
    partial_path,
    partials,
    remove,
    stamp_matches,
    write_stamp,
)
from .registry import QuantFile, ResolvedModel

if TYPE_CHECKING:
    from .hub import RemoteFile

__all__ = ["LocalFile", "Phase", "PullProgress", "downloaded_files", "files_to_remove", "pull", "remove"]

_HASH_BLOCK = 8 * 1024 * 1024


class Phase(str, Enum):
    CHECKING = "checking"  # asking the hub about the file
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"  # hashing the file
    PRESENT = "present"  # already downloaded and verified: nothing to do
    DONE = "done"


@dataclass(frozen=True)
class PullProgress:
    phase: Phase
    done: int = 0  # bytes on disk (downloading) or hashed (verifying)
    total: int | None = None
    resumed_from: int = 0  # bytes already on disk when this download started
    source: str = ""  # the URL being fetched, or the file being checked


ProgressCallback = Callable[[PullProgress], None]


def _ignore(_: PullProgress) -> None:
    return None


def pull(
    model: ResolvedModel, *, progress: ProgressCallback | None = None, force: bool = False, revision: str = "main"
) -> Path:
    """Download ``model`` (a resolved registry entry with a hub repo) unless it is
    already there and verified; returns the final path. Raises ``DownloadError``."""
    emit = progress or _ignore
    quant = hub_quant(model)
    dest = confined(model.path)
    repo = model.entry.repo or ""
    if not force and _already_verified(dest, quant.sha256, quant.bytes, emit):
        return dest

    from . import hub  # lazily: huggingface_hub + httpx2 take a while to import

    emit(PullProgress(Phase.CHECKING, source=hub.resolve_url(repo, quant.file, revision)))
    remote = hub.describe(repo, quant.file, revision)
    size, sha = _expected(model, quant, remote.size, remote.sha256, remote.url)
    # A file already there (copied in, or pulled before stamps existed) that checks
    # out. Against a sha256 the registry pins, _already_verified has hashed it already.
    if not force and not quant.sha256 and dest.is_file() and (digest := _existing_digest(dest, size, sha, emit)):
        write_stamp(dest, digest, remote.url, remote.commit)
        emit(PullProgress(Phase.PRESENT, dest.stat().st_size, size, source=str(dest)))
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    busy = DownloadError(f"another `marco pull` is already downloading {dest.name} into {dest.parent}")
    with held_lock(dest, busy):  # one pull per file at a time
        _download(remote, dest, size, sha, emit)
    return dest


def _download(remote: RemoteFile, dest: Path, size: int | None, sha: str | None, emit: ProgressCallback) -> None:
    from . import hub

    partial = _fresh_partial(dest, sha or remote.etag, size)
    resumed = partial.stat().st_size if partial.exists() else 0
    _check_space(partial.parent, (size or 0) - resumed, dest.name)
    emit(PullProgress(Phase.DOWNLOADING, resumed, size, resumed, remote.url))

    def on_bytes(done: int) -> None:
        emit(PullProgress(Phase.DOWNLOADING, done, size, resumed, remote.url))

    try:
        # Unbuffered: each network chunk is on disk as soon as it arrives, so
        # Ctrl-C loses at most one chunk (hub.CHUNK_BYTES).
        with open(partial, "ab", buffering=0) as out:
            hub.fetch(remote, out, resume_from=resumed, on_bytes=on_bytes)
            out.flush()
            os.fsync(out.fileno())  # durable before the rename makes it official
    except OSError as exc:
        raise _disk_error(exc, partial, size) from None

    digest = _check_download(partial, size, sha, remote.url, emit)
    os.replace(partial, dest)
    write_stamp(dest, digest, remote.url, remote.commit)
    emit(PullProgress(Phase.DONE, dest.stat().st_size, size, resumed, str(dest)))


def _expected(
    model: ResolvedModel, quant: QuantFile, hub_size: int | None, hub_sha: str | None, url: str
) -> tuple[int | None, str | None]:
    """Size and sha256 to check against: the registry pins them when it can; the
    hub's answer fills the gaps. Disagreement stops us before a useless download."""
    where = f"[models.{model.name}.quants.{quant.quant}]"
    if quant.bytes and hub_size and quant.bytes != hub_size:
        raise DownloadError(
            f"the registry says {quant.file} has {quant.bytes} bytes but {url} has {hub_size}",
            hint=f"the file changed upstream; update {where} in the model registry",
        )
    if quant.sha256 and hub_sha and quant.sha256 != hub_sha:
        raise DownloadError(
            f"the registry pins sha256 {quant.sha256[:12]}… for {quant.file} but {url} serves {hub_sha[:12]}…",
            hint=f"the file changed upstream; update {where} in the model registry",
        )
    return quant.bytes or hub_size, quant.sha256 or hub_sha


def _already_verified(dest: Path, sha: str | None, size: int | None, emit: ProgressCallback) -> bool:
    """True when ``dest`` needs no network: its stamp matches, or the registry pins
    a sha256 that the file has (then it is stamped for next time)."""
    if not dest.is_file():
        return False
    if stamp_matches(dest, sha, size):
        emit(PullProgress(Phase.PRESENT, dest.stat().st_size, size, source=str(dest)))
        return True
    if sha and _existing_digest(dest, size, sha, emit):
        write_stamp(dest, sha, None, None)
        emit(PullProgress(Phase.PRESENT, dest.stat().st_size, size, source=str(dest)))
        return True
    return False


def _existing_digest(dest: Path, size: int | None, sha: str | None, emit: ProgressCallback) -> str | None:
    """The sha256 of a file already at ``dest`` when it matches what is expected, else None.
    Without any sha256 to compare with, the right size is all we can check."""
    if size is not None and dest.stat().st_size != size:
        return None
    digest = _sha256_of(dest, emit)
    return digest if sha is None or digest == sha else None


def _check_download(partial: Path, size: int | None, sha: str | None, url: str, emit: ProgressCallback) -> str:
    """Size, then sha256; a file failing either is deleted (it cannot be resumed into
    anything good) and the error says so."""
    actual = partial.stat().st_size
    if size is not None and actual != size:
        partial.unlink(missing_ok=True)
        raise DownloadError(
            f"{url} gave {actual} bytes, expected {size}; the bad download was deleted",
            hint="run the same pull again",
        )
    digest = _sha256_of(partial, emit)
    if sha is not None and digest != sha:
        partial.unlink(missing_ok=True)
        raise DownloadError(
            f"sha256 mismatch for {url}: expected {sha}, got {digest}; the bad download was deleted",
            hint="run the same pull again; if it happens again the file or the registry is wrong",
        )
    return digest


def _sha256_of(path: Path, emit: ProgressCallback = _ignore) -> str:
    total = path.stat().st_size
    digest = hashlib.sha256()
    done = 0
    emit(PullProgress(Phase.VERIFYING, 0, total, source=str(path)))
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
            done += len(block)
            emit(PullProgress(Phase.VERIFYING, done, total, source=str(path)))
    return digest.hexdigest()


# -- partial file, disk space ---------------------------------------------------------


def _fresh_partial(dest: Path, tag: str | None, size: int | None) -> Path:
    """The partial file to append to; partials of other versions are dropped."""
    partial = partial_path(dest, tag, size)
    for other in partials(dest):
        if other != partial:
            other.unlink(missing_ok=True)
    if size is not None and partial.exists() and partial.stat().st_size > size:
        partial.unlink()  # longer than the file itself: not ours to resume
    return partial


def _free_bytes(directory: Path) -> int:
    return shutil.disk_usage(directory).free


def _check_space(directory: Path, needed: int, filename: str) -> None:
    free = _free_bytes(directory)
    if needed > free:
        raise DownloadError(
            f"not enough disk space in {directory} for {filename}: needs {_human(needed)} more, {_human(free)} free",
            hint="free some space (or set MARCO_MODELS_DIR) and pull again",
        )


def _disk_error(exc: OSError, partial: Path, size: int | None) -> DownloadError:
    done = partial.stat().st_size if partial.exists() else 0
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DownloadError(
            f"disk full in {partial.parent} after {_human(done)} of {_human(size or 0)}; "
            f"the partial download is kept as {partial.name}",
            hint="free some space and pull again to resume, or `marco rm` it",
        )
    return DownloadError(f"cannot write {partial}: {exc.strerror or exc}")


def _human(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"
