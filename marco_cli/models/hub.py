"""The one module that talks to the Hugging Face Hub, through ``huggingface_hub``.

Why not ``hf_hub_download``: in huggingface_hub 2.x it streams into a
process-unique temporary file and deletes it on any failure (their PR #4228),
so an interrupted 5 GB download starts again from zero. We use the library's
lower-level pieces instead and keep our own partial file (see download.py):

- ``hf_hub_url`` + ``get_hf_file_metadata``: the ``HEAD /{repo}/resolve/{rev}/{file}``
  call, with the user's token (``HF_TOKEN`` / ``HF_HOME``), redirects and typed errors;
- ``file_download.http_get``: the streaming GET, resuming with a ``Range``
  header and retrying dropped connections by itself.

huggingface_hub reads ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` once, at import;
we read them again per call so they work however marco was started.
Every failure becomes a one-line ``DownloadError`` naming what was tried.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urljoin, urlparse

import httpx2
from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import http_get
from huggingface_hub.utils import build_hf_headers

from .. import __version__
from ..core.errors import DownloadError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
CHUNK_BYTES = 1024 * 1024
"""Bytes read from the network and written at a time: what a Ctrl-C can lose.
huggingface_hub's own 10 MB chunks lost up to 10 MB of a pull."""


@dataclass(frozen=True)
class RemoteFile:
    """What the hub's HEAD answer says about one file."""

    repo: str
    filename: str
    url: str  # the /resolve URL: what we name in errors
    location: str  # where the bytes are (a CDN after the hub's redirect)
    size: int | None
    etag: str | None
    commit: str | None
    headers: dict[str, str]  # for the GET; no token when it leaves the hub's host

    @property
    def sha256(self) -> str | None:
        """For LFS files the hub's etag *is* the content's sha256."""
        return self.etag if self.etag and _SHA256.match(self.etag) else None


def quiet_logs() -> None:
    """huggingface_hub logs each automatic retry of a dropped connection as a
    multi-line warning on stderr; it needs no action and the progress display
    already shows the pull. HF_HUB_VERBOSITY or --debug keep those logs."""
    if os.environ.get("HF_HUB_VERBOSITY") or os.environ.get("MARCO_DEBUG", "").strip() not in ("", "0"):
        return
    from huggingface_hub.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return value in {"1", "ON", "YES", "TRUE"} or constants.is_offline_mode()


def resolve_url(repo: str, filename: str, revision: str = "main") -> str:
    return hf_hub_url(repo, filename, revision=revision, endpoint=endpoint())


def describe(repo: str, filename: str, revision: str = "main") -> RemoteFile:
    """HEAD the file on the hub: size, etag (sha256 for LFS), commit, where to GET it."""
    url = resolve_url(repo, filename, revision)
    if offline():
        raise _offline_error(url)
    headers = build_hf_headers(library_name="marco", library_version=__version__)
    # The real size, not a gzip'ed one; the hub never compresses GGUFs anyway.
    headers["Accept-Encoding"] = "identity"
    try:
        meta = get_hf_file_metadata(url, headers=headers, endpoint=endpoint())
    except Exception as exc:  # noqa: BLE001 - every failure is mapped, unknown ones included
        raise _error(exc, repo, filename, url) from None
    if meta.commit_hash is None:
        raise DownloadError(
            f"{url} did not answer like a Hugging Face Hub (no X-Repo-Commit header)",
            hint="check HF_ENDPOINT",
        )
    location = urljoin(url, meta.location)
    if _origin(location) != _origin(url):
        # A signed CDN URL: the token must not leave the hub (huggingface_hub does the same).
        headers.pop("authorization", None)
    return RemoteFile(repo, filename, url, location, meta.size, meta.etag, meta.commit_hash, headers)


def fetch(remote: RemoteFile, out: BinaryIO, *, resume_from: int, on_bytes: Callable[[int], None]) -> None:
    """Append the file's bytes after ``resume_from`` to ``out``.

    ``http_get`` asks for ``Range: bytes=N-``, copes with servers that ignore it,
    and retries a dropped connection (5 times, resuming) before giving up.
    Local write errors (``OSError`` with an errno, e.g. ENOSPC) pass through.
    """
    meter = functools.partial(_Meter, on_bytes)
    try:
        with _chunks_of(CHUNK_BYTES):
            _http_get(remote, out, resume_from, meter)
    except HfHubHTTPError as exc:
        if remote.location == remote.url:
            raise _error(exc, remote.repo, remote.filename, remote.url) from None
        # The CDN refused its own signed link: they expire (about an hour), and
        # http_get reuses it when it reconnects. A new pull asks the hub for a fresh one.
        status = exc.response.status_code if exc.response is not None else "?"
        raise DownloadError(
            f"the storage behind {remote.url} refused the download link (HTTP {status}; signed links expire)",
            hint="run the same pull again to resume",
        ) from None
    except httpx2.HTTPError as exc:
        raise DownloadError(
            f"connection lost while downloading {remote.url}: {_first_line(exc)}",
            hint="run the same pull again to resume",
        ) from None
    except OSError as exc:
        if exc.errno is not None:
            raise  # the local disk, not the network: the caller knows the file
        # http_get's "Consistency check failed": the body was not the announced size.
        raise DownloadError(
            f"{remote.url} sent a different number of bytes than announced ({remote.size})",
            hint="run the same pull again",
        ) from None


def _http_get(remote: RemoteFile, out: BinaryIO, resume_from: int, meter: Callable[..., object]) -> None:
    http_get(
        remote.location,
        out,
        resume_size=resume_from,
        headers=remote.headers,
        expected_size=remote.size,
        displayed_filename=remote.filename,
        tqdm_class=meter,  # type: ignore[arg-type]  # a callable returning a bar is accepted
    )


@contextlib.contextmanager
def _chunks_of(size: int) -> Iterator[None]:
    """http_get reads its chunk size from ``constants`` on each call; nothing
    else in marco downloads, so setting it for the call's duration is enough."""
    old = constants.DOWNLOAD_CHUNK_SIZE
    constants.DOWNLOAD_CHUNK_SIZE = size
    try:
        yield
    finally:
        constants.DOWNLOAD_CHUNK_SIZE = old


class _Meter:
    """Stands in for http_get's tqdm bar: counts bytes, reports them, draws nothing.

    huggingface_hub accepts any callable as ``tqdm_class`` and calls it with
    tqdm's keyword arguments; the same object is reused across its retries.
    """

    def __init__(self, on_bytes: Callable[[int], None], *, initial: int = 0, **_: object) -> None:
        self.n = initial
        self._on_bytes = on_bytes

    def __enter__(self) -> "_Meter":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int | float | None = 1) -> None:
        # Negative when a server ignored our Range and the file was rewound.
        self.n += int(n or 0)
        self._on_bytes(self.n)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlparse(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0]


def _offline_error(url: str) -> DownloadError:
    return DownloadError(f"offline mode is on (HF_HUB_OFFLINE): did not fetch {url}",
                         hint="unset HF_HUB_OFFLINE to download")


def _error(exc: BaseException, repo: str, filename: str, url: str) -> DownloadError:
    """One line for a user: what failed, what was tried, what to do."""
    if isinstance(exc, OfflineModeIsEnabled):
        return _offline_error(url)
    if isinstance(exc, httpx2.ConnectError):
        return DownloadError(f"cannot reach {endpoint()} ({_first_line(exc)}) to fetch {url}",
                             hint="check your connection, or set HF_ENDPOINT to a mirror")
    if isinstance(exc, httpx2.TimeoutException):
        return DownloadError(f"{endpoint()} did not answer in time to fetch {url}",
                             hint="check your connection; HF_HUB_ETAG_TIMEOUT raises the limit")
    if isinstance(exc, GatedRepoError):
        return DownloadError(f"{repo} is a gated repository: {url}",
                             hint=f"accept its terms at {endpoint()}/{repo} and set HF_TOKEN")
    if isinstance(exc, RepositoryNotFoundError):
        return DownloadError(f"repository {repo} not found: {url}",
                             hint="if it is private or gated, set HF_TOKEN to a token that can read it")
    if isinstance(exc, RevisionNotFoundError):
        return DownloadError(f"revision not found in {repo}: {url}")
    if isinstance(exc, RemoteEntryNotFoundError):
        return DownloadError(f"{filename} not found in {repo}: {url}",
                             hint="the registry entry may be out of date")
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            return DownloadError(f"access denied (HTTP {status}) to {url}",
                                 hint=f"set HF_TOKEN to a token that can read {repo}")
        return DownloadError(f"the hub answered HTTP {status} for {url}")
    if isinstance(exc, httpx2.HTTPError):
        return DownloadError(f"network error while fetching {url}: {_first_line(exc)}")
    return DownloadError(f"could not fetch {url}: {type(exc).__name__}: {_first_line(exc)}")
