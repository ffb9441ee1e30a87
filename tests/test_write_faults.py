"""Writing never costs the user what they had, and a write that fails is one
line and exit 1: saves keep the file's mode and write through symlinks, a full
disk (a small tmpfs mounted for the test, or /dev/full) keeps the old
export-dpo file whole and leaves no empty eval --out file, and stdout on a full
disk or closed ends every command the same way. Real processes throughout."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import uuid

import pytest
from child_env import ROOT
from child_env import run_marco as marco
from test_treefile import SETTINGS, searched
from typer.testing import CliRunner

from marco_cli.chat.conversation import Conversation, Turn, load_conversation, save_conversation
from marco_cli.cli import app
from marco_cli.core.atomic import write_text_atomic
from marco_cli.core.errors import OutputError
from marco_cli.evaluation.results import JsonlWriter
from marco_cli.treefile.io import options_dict, save_tree

TINY = ["-m", "tiny", "--threads", "1", "--max-tokens", "4", "--ctx", "1024"]


def one_line(proc, code: int, *texts: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("marco: error: ")]
    assert len(lines) == 1, proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr and "Exception" not in proc.stderr
    for text in texts:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def full_disk(tmp_path):
    """A 256 KiB tmpfs, mounted for this test (needs root), and a way to fill it."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small filesystem needs root")
    mnt = tmp_path / f"small-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")

    def fill() -> None:
        try:
            with open(mnt / "filler", "ab", buffering=0) as f:
                while True:
                    f.write(b"\0" * 4096)
        except OSError:
            pass

    try:
        yield mnt, fill
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


# -- item 5: mode and symlinks --------------------------------------------------------


def test_saving_keeps_the_mode_and_writes_through_a_symlink(tmp_path):
    private = tmp_path / "chat.json"
    save_conversation(Conversation(turns=[Turn("hi", "hello")]), private)
    os.chmod(private, 0o600)
    save_conversation(Conversation(turns=[Turn("hi", "hello"), Turn("and?", "bye")]), private)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600 and len(load_conversation(private).turns) == 2

    result, recorder = searched()
    real = tmp_path / "trees" / "real.json"
    real.parent.mkdir()
    real.write_text("old")
    os.chmod(real, 0o640)
    link = tmp_path / "link.json"
    link.symlink_to(os.path.relpath(real, tmp_path))
    save_tree(link, result, question="q", model="m", options=options_dict(SETTINGS), recorder=recorder)
    assert link.is_symlink() and json.loads(real.read_text())["question"] == "q"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert sorted(p.name for p in real.parent.iterdir()) == ["real.json"]  # no temp file left

    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "new-target.json")
    write_text_atomic(dangling, "x\n")
    assert dangling.is_symlink() and (tmp_path / "new-target.json").read_text() == "x\n"


@pytest.mark.model
def test_chat_save_of_a_private_file_stays_private(tmp_path):
    saved = tmp_path / "chat.json"
    first = CliRunner().invoke(app, ["chat", *TINY, "--save", str(saved)], input="hi\n")
    assert first.exit_code == 0, first.stderr
    os.chmod(saved, 0o600)
    again = CliRunner().invoke(app, ["chat", *TINY, "--resume", str(saved), "--save", str(saved)], input="more\n")
    assert again.exit_code == 0, again.stderr
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600 and len(load_conversation(saved).turns) == 2


# -- item 9: full disk ----------------------------------------------------------------


def test_export_dpo_on_a_full_disk_keeps_the_old_file(full_disk, tmp_path):
    mnt, fill = full_disk
    result, recorder = searched()
    tree = tmp_path / "tree.json"
    save_tree(tree, result, question="add two and three", model="m", options=options_dict(SETTINGS), recorder=recorder)
    out = mnt / "pairs.jsonl"
    old = "".join(json.dumps({"line": i, "pad": "x" * 40}) + "\n" for i in range(500))
    out.write_text(old)
    fill()
    proc = marco("export-dpo", str(tree), "-o", str(out))
    one_line(proc, 1, f"cannot write {out}")
    assert out.read_text() == old
    assert sorted(p.name for p in mnt.iterdir()) == ["filler", "pairs.jsonl"]


@pytest.mark.model
def test_eval_out_on_a_full_disk_leaves_no_empty_file(full_disk, tmp_path):
    mnt, fill = full_disk
    dataset = tmp_path / "d.tsv"
    dataset.write_text("What is 2+3?\t5\n")
    out = mnt / "results.jsonl"
    fill()
    proc = marco("eval", str(dataset), "--modes", "cot", *TINY, "--out", str(out))
    one_line(proc, 1, f"cannot write {out}")
    assert not out.exists()


def test_results_file_keeps_whole_rows_when_the_disk_fills(full_disk):
    mnt, fill = full_disk
    path = mnt / "rows.jsonl"
    row = {"question_id": "q", "pad": "y" * 3000}
    with pytest.raises(OutputError, match="rows written before are kept"), JsonlWriter(path, resume=False) as writer:
        writer.append(row)
        fill()
        while True:
            writer.append(row)
    lines = path.read_bytes().splitlines(keepends=True)
    assert lines and all(line.endswith(b"\n") and json.loads(line) == row for line in lines)


# -- item 11: stdout ------------------------------------------------------------------


@pytest.mark.model
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_stdout_on_a_full_device_is_one_line(tmp_path):
    with open("/dev/full", "w") as full:
        one_line(marco("models", "--json", stdout=full), 1, "stdout", "no space left")
        one_line(marco("ask", *TINY, "--mode", "cot", "hi", stdout=full), 1, "stdout", "no space left")
        one_line(marco("translate", *TINY, "--to", "en", "hola", stdout=full), 1, "stdout", "no space left")


@pytest.mark.model
def test_closed_stdout_is_one_line():
    def closed(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["/bin/bash", "-c", f'exec "{sys.executable}" -m marco_cli "$@" >&-', "marco", *args],
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            timeout=600,
            stdin=subprocess.DEVNULL,
        )

    one_line(closed("models", "--json"), 1, "stdout is closed")
    one_line(closed("ask", *TINY, "--mode", "cot", "hi", "--json"), 1, "stdout is closed")


def test_files_are_written_only_through_the_two_safe_writers():
    """A new direct write would bring back the faults above: every file marco
    writes goes through core/atomic.py, except the pull's own resumable partial
    file (downloads) and the chat history (written beside, then renamed)."""
    import re

    writes = re.compile(r"\.write_text\(|\.write_bytes\(|open\([^)]*['\"][wax]b?\+?['\"]|write_history_file|O_CREAT")
    allowed = {"core/atomic.py", "models/download.py", "ui/line_input.py"}
    found = {
        str(path.relative_to(ROOT / "marco_cli"))
        for path in (ROOT / "marco_cli").rglob("*.py")
        if writes.search(path.read_text(encoding="utf-8"))
    }
    assert found <= allowed, found - allowed
