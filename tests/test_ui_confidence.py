"""--confidence on a real terminal (pexpect): the answer is tinted token by
token, and without the colour codes it is exactly the plain answer."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest
from child_env import pythonpath

pytestmark = pytest.mark.model

ROOT = Path(__file__).resolve().parent.parent
COT = ["-m", "tiny", "--mode", "cot", "--max-tokens", "16", "--ctx", "1024"]
SGR = re.compile(r"\x1b\[[0-9;]*m")
TINTED_WORD = re.compile(r"\x1b\[[0-9;]*(?:3[0-7]|9[0-7])m *\w")  # a foreground colour on model text


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": pythonpath(ROOT), "MARCO_HOME": str(home), "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    return env


def _pty(args: list[str], home: Path) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable, ["-m", "marco_cli", *args], env=_env(home), timeout=180, encoding="utf-8", dimensions=(30, 100)
    )


def test_ask_confidence_tints_each_token(tmp_path):
    question = "Name a colour."
    piped = subprocess.run(
        [sys.executable, "-m", "marco_cli", "ask", *COT, question],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert piped.returncode == 0, piped.stderr
    child = _pty(["ask", *COT, "--confidence", question], tmp_path)
    child.expect(pexpect.EOF)
    shown = child.before
    child.close()
    assert child.exitstatus == 0, shown
    assert TINTED_WORD.search(shown), shown
    assert piped.stdout.strip() in SGR.sub("", shown).replace("\r\n", "\n")


def test_chat_confidence_tints_the_answer(tmp_path):
    child = _pty(["chat", *COT, "--confidence"], tmp_path)
    child.expect(">>> ")
    child.sendline("Name a colour.")
    child.expect(">>> ")
    answer = child.before
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert TINTED_WORD.search(answer), answer  # (the loading spinner's colour is on a symbol)
    assert SGR.sub("", answer).strip()
