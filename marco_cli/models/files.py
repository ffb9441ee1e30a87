"""What ``marco pull`` leaves in ``models_dir()/NAME/`` and how to read it back.

Next to ``FILE`` (only ever a complete, verified download) live:

- ``FILE.<tag>.incomplete``: a download in progress or interrupted; the tag is
  the content's sha256 (or etag), so a file that changed upstream never resumes
  onto stale bytes;
- ``.FILE.verified.json``: the stamp written after verification (sha256, size,
  mtime), so pulling again costs a ``stat`` instead of hashing gigabytes;
- ``.FILE.lock``: held while a pull writes, so two pulls cannot interleave,
  and taken by ``marco rm`` too, so it never deletes under a running pull.

Every one of these paths lies inside the models folder (``confined``): the
registry's ``file`` is checked when the registry is read, and the resolved
folder again before anything is written or deleted, so neither a registry
entry nor a symlinked folder can send a pull or an ``rm`` elsewhere. ``rm``
deletes a complete file only when marco's own stamp vouches that a pull
put it there.

No network and no huggingface_hub here: ``marco models`` and ``marco rm`` stay fast.
"""

from __future__ import annotations

import glob
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..core.atomic import write_text_atomic
from ..core.errors import DownloadError, ModelNotFoundError, UsageError
from ..core.settings import models_dir
from ..core.untrusted import load_json
from .registry import QuantFile, Registry, ResolvedModel, download_path


@dataclass(frozen=True)
class LocalFile:
    """A file ``marco pull`` put on disk, for ``marco models``."""

    name: str
    quant: str
    path: Path
    size: int  # bytes on disk (so far, for a partial download)
    state: str  # "verified", "unverified" (there, but not stamped by a pull) or "partial"


def hub_quant(model: ResolvedModel) -> QuantFile:
    """The quant file of a downloadable model; a clear error for any other kind."""
    entry = model.entry
    if entry.downloadable and model.quant_file is not None:
        return model.quant_file
    if entry.package:
        raise UsageError(
            f"'{model.name}' ships inside the {entry.package} Python package; marco neither downloads nor removes it"
        )
    if entry.base_url:
        raise UsageError(f"'{model.name}' runs on a server ({entry.base_url}); there is no file to download or remove")
    raise UsageError(f"'{model.name}' is a local file ({model.path}), not a Hugging Face Hub model")


def partials(dest: Path) -> list[Path]:
    return sorted(dest.parent.glob(f"{glob.escape(dest.name)}.*.incomplete"))


def partial_path(dest: Path, tag: str | None, size: int | None) -> Path:
    safe_tag = re.sub(r"[^0-9A-Za-z]", "", tag or "")[:16] or f"size{size or 0}"
    return dest.with_name(f"{dest.name}.{safe_tag}.incomplete")


def lock_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.lock")


@contextmanager
def held_lock(dest: Path, busy: DownloadError) -> Iterator[None]:
    """``dest``'s lock, taken without waiting: ``busy`` when another pull or rm
    holds it (two pulls appending to one partial would corrupt it)."""
    from filelock import FileLock, Timeout  # a dependency of huggingface_hub

    lock = FileLock(lock_path(dest), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise busy from None
    try:
        yield
    finally:
        lock.release()


def stamp_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.verified.json")


def write_stamp(dest: Path, sha: str, url: str | None, commit: str | None) -> None:
    st = dest.stat()
    data = {"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "url": url, "commit": commit}
    write_text_atomic(stamp_path(dest), json.dumps(data, indent=1) + "\n")


def stamp_matches(dest: Path, sha: str | None, size: int | None) -> bool:
    """The stamp vouches for the file as it is now (same size and mtime) and
    agrees with the sha256 / size we expect, when we expect one."""
    try:
        data = load_json(stamp_path(dest).read_bytes())  # its ValueErrors: no valid stamp
        st = dest.stat()
        same_file = data["size"] == st.st_size and data["mtime_ns"] == st.st_mtime_ns
        return bool(same_file and (sha is None or data["sha256"] == sha) and (size is None or size == st.st_size))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def downloaded_files(registry: Registry) -> list[LocalFile]:
    """Every registry file under the models dir, complete or partial."""
    found: list[LocalFile] = []
    for entry in registry.models.values():
        if not entry.downloadable:
            continue
        for quant in entry.quants.values():
            dest = download_path(entry, quant)
            if dest.is_file():
                state = "verified" if stamp_matches(dest, quant.sha256, quant.bytes) else "unverified"
                found.append(LocalFile(entry.name, quant.quant, dest, dest.stat().st_size, state))
            found.extend(
                LocalFile(entry.name, quant.quant, p, p.stat().st_size, "partial")
                for p in partials(dest)
                if p.is_file()
            )
    return found


def confined(dest: Path) -> Path:
    """``dest`` itself, once its folder is known to resolve inside the models
    folder; else an error (the registry check makes this a second line of defence)."""
    root = models_dir().resolve()
    folder = dest.parent.resolve()
    if folder != root and root not in folder.parents:
        raise UsageError(f"{dest} is outside the models folder {root}; marco writes and deletes only inside it")
    return dest


def files_to_remove(model: ResolvedModel) -> list[Path]:
    """What ``marco rm`` deletes: the file, its stamp and partial downloads (and,
    in ``remove``, the lock). A complete file that no pull stamp vouches for is
    not marco's to delete."""
    hub_quant(model)
    dest = confined(model.path)
    if dest.is_symlink() or (dest.exists() and not stamp_matches(dest, None, None)):
        raise UsageError(
            f"{dest} was not downloaded by marco (no pull stamp matches it), so `marco rm` leaves it",
            hint="delete it yourself if you mean to",
        )
    candidates = [dest, stamp_path(dest), *partials(dest)]
    return [p for p in candidates if p.exists() or p.is_symlink()]


def remove(model: ResolvedModel) -> list[Path]:
    """Delete a pulled model's files; ``ModelNotFoundError`` when there is nothing,
    ``DownloadError`` while a ``marco pull`` of it is running."""
    victims = files_to_remove(model)
    if not victims:
        raise ModelNotFoundError(f"{model.label} is not downloaded (nothing at {model.path})")
    busy = DownloadError(
        f"a `marco pull` is downloading {model.label} right now; nothing was removed",
        hint="stop that pull first (Ctrl-C), then remove it",
    )
    with held_lock(model.path, busy):
        victims = files_to_remove(model)  # again, now that no pull can change them
        for path in victims:
            path.unlink(missing_ok=True)
        lock_path(model.path).unlink(missing_ok=True)
    try:
        model.path.parent.rmdir()  # only when it is now empty
    except OSError:
        pass
    return victims
