"""--confidence on a real terminal (pexpect): the answer is tinted token by
token, and without the colour codes it is exactly the plain answer."""

from __future__ import annotations

import re
import subprocess

import pexpect
import pytest
from child_env import MARCO, marco_env, spawn_marco

pytestmark = pytest.mark.model

COT = ["-m", "tiny", "--mode", "cot", "--max-tokens", "16", "--ctx", "1024"]
SGR = re.compile(r"\x1b\[[0-9;]*m")
TINTED_WORD = re.compile(r"\x1b\[[0-9;]*(?:3[0-7]|9[0-7])m *\w")  # a foreground colour on model text


def test_ask_confidence_tints_each_token(tmp_path):
    question = "Name a colour."
    piped = subprocess.run(
        [*MARCO, "ask", *COT, question],
        env=marco_env(tmp_path, TERM="xterm"),
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert piped.returncode == 0, piped.stderr
    child = spawn_marco("ask", *COT, "--confidence", question, home=tmp_path, timeout=180)
    child.expect(pexpect.EOF)
    shown = child.before
    child.close()
    assert child.exitstatus == 0, shown
    assert TINTED_WORD.search(shown), shown
    assert piped.stdout.strip() in SGR.sub("", shown).replace("\r\n", "\n")


def test_chat_confidence_tints_the_answer(tmp_path):
    child = spawn_marco("chat", *COT, "--confidence", home=tmp_path, timeout=180)
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
