"""Routing of streamed text: thought to stderr, answer to stdout."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from marco_cli.ui.stream import AnswerStream


def _run(text: str, chunk: int, capsys):
    buf = io.StringIO()
    stream = AnswerStream(answer_to_stdout=True, thought_console=Console(file=buf, color_system=None))
    for i in range(0, len(text), chunk):
        stream.feed(text[i : i + chunk])
    stream.close()
    return capsys.readouterr().out, buf.getvalue(), stream


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 100])
def test_tagged_text_is_split(chunk, capsys):
    out, err, stream = _run("<Thought>\nlet me think\n</Thought>\n<Output>\n42 apples\n</Output>", chunk, capsys)
    assert out == "42 apples\n"
    assert "let me think" in err and "<" not in err and "42" not in err
    assert stream.wrote_answer


@pytest.mark.parametrize("chunk", [1, 4, 100])
def test_untagged_text_is_all_answer(chunk, capsys):
    out, err, _ = _run("Paris is the capital <b>of</b> France.", chunk, capsys)
    assert out == "Paris is the capital <b>of</b> France.\n" and err == ""


def test_half_tag_at_the_end_is_flushed(capsys):
    out, _, _ = _run("<Output>yes </Out", 1, capsys)
    assert out.startswith("yes </Out")
