"""Reasoning formats per model (marco, think, none): the registry key, parsing,
streaming, the search's stops and reflection, the value span, eval scoring,
and the reasoner with a chat template that opens <think> itself. A GGUF that
speaks <think> cannot be downloaded here, so R1-style models are the scripted
backend's ``style="think"``; the real embedded model is tested for ``none``."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fakehub import FakeHub, gguf_bytes, gguf_sha, online  # noqa: F401  (fixtures)
from rich.console import Console
from scripted_backend import ScriptedBackend
from typer.testing import CliRunner

from marco_cli.backends.base import StopReason
from marco_cli.backends.utf8 import whole_character_prefix, whole_character_text
from marco_cli.cli import app
from marco_cli.core.errors import ConfigError
from marco_cli.core.settings import REFLECTION_PHRASE, Mode, Pick, SearchSettings, ValueSpan
from marco_cli.evaluation.answers import extract_answer
from marco_cli.formats.reasoning import MARCO, NONE, THINK, Reasoning
from marco_cli.formats.split import CONTENT, DRAFT, REASONING, splitter_for
from marco_cli.models.registry import ModelEntry, ResolvedModel, load_registry, parse_registry
from marco_cli.reasoner import Reasoner
from marco_cli.search import run_search
from marco_cli.search.scoring import output_span
from marco_cli.search.vote import answer_key
from marco_cli.ui.stream import AnswerStream

# -- registry ------------------------------------------------------------------------


def _registry(body: str):
    return parse_registry(f"[models.a]\npath = 'x.gguf'\n{body}", Path("models.toml"))


@pytest.mark.parametrize(
    "body,kind",
    [
        ("reasoning = 'marco'", Reasoning.MARCO),
        ("reasoning = 'think'", Reasoning.THINK),
        ("reasoning = 'None'", Reasoning.NONE),
        ("thought_format = true", Reasoning.MARCO),  # the older key still reads
        ("thought_format = false", Reasoning.NONE),
        ("", Reasoning.NONE),
    ],
)
def test_registry_reasoning_key(body, kind):
    entry = _registry(body).models["a"]
    assert entry.reasoning is kind and entry.format.kind is kind


@pytest.mark.parametrize(
    "body,message",
    [
        ("reasoning = 'cot'", r"\[models.a\].reasoning: expected one of 'marco', 'think', 'none', got 'cot'"),
        ("reasoning = true", r"\[models.a\].reasoning: expected str"),
        ("reasoning = 'think'\nthought_format = true", r"give 'reasoning' or the older 'thought_format', not both"),
    ],
)
def test_registry_reasoning_errors(body, message):
    with pytest.raises(ConfigError, match=message):
        _registry(body)


def test_shipped_registry_has_reasoning_models_with_hub_files():
    registry = load_registry()
    expected = {
        "r1-distill-qwen-1.5b": (
            "unsloth/DeepSeek-R1-Distill-Qwen-1.5B-GGUF",
            "DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf",
        ),
        "r1-distill-qwen-7b": ("unsloth/DeepSeek-R1-Distill-Qwen-7B-GGUF", "DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf"),
        "qwen3-1.7b": ("Qwen/Qwen3-1.7B-GGUF", "Qwen3-1.7B-Q8_0.gguf"),
    }
    for name, (repo, file) in expected.items():
        entry = registry.models[name]
        assert entry.reasoning is Reasoning.THINK and entry.downloadable
        assert entry.repo == repo and entry.quants[entry.default_quant].file == file
    assert registry.models["marco-o1"].reasoning is Reasoning.MARCO
    assert registry.models["smollm2-135m"].reasoning is Reasoning.NONE
    assert registry.lookup("r1-1.5b").name == "r1-distill-qwen-1.5b"


@pytest.mark.model
@pytest.mark.parametrize(
    "name,repo,file",
    [
        ("r1-1.5b", "unsloth/DeepSeek-R1-Distill-Qwen-1.5B-GGUF", "DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf"),
        ("r1-7b", "unsloth/DeepSeek-R1-Distill-Qwen-7B-GGUF", "DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf"),
        ("qwen3", "Qwen/Qwen3-1.7B-GGUF", "Qwen3-1.7B-Q8_0.gguf"),
    ],
)
def test_reasoning_models_are_pullable(online, monkeypatch, isolated_home, gguf_bytes, name, repo, file):
    with FakeHub() as fake:
        fake.add(repo, file, gguf_bytes)
        monkeypatch.setenv("HF_ENDPOINT", fake.endpoint)
        result = CliRunner().invoke(app, ["pull", name])
    assert result.exit_code == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path.name == file and path.read_bytes() == gguf_bytes


# -- parsing -------------------------------------------------------------------------


def test_think_parse():
    p = THINK.parse("<think>\nadd them\n</think>\n\nThe answer is 4.")
    assert (p.thought, p.answer, p.has_tags) == ("add them", "The answer is 4.", True)
    # the template opened <think>: the text starts inside the thought
    p = THINK.parse("add them\n</think>\n4")
    assert (p.thought, p.answer) == ("add them", "4")
    assert THINK.parse("<think>still thinking").answer == "still thinking"  # all there is
    assert THINK.parse("plain 4").thought == ""


@pytest.mark.parametrize(
    "text,answer",
    [
        ("6 * 7 = 42\n\nOutput: 42\n\nOutput: 42", "42"),  # the leak the issue shows
        ("work\n**Answer:** 12 apples", "12 apples"),
        ("work\n### Final Answer: 7", "7"),
        ("x\nAnswer: 42\nAnswer:", "42"),  # an empty last marker does not win
        ("答案\nAnswer：五", "五"),
        ("The answer: is in the sentence", "The answer: is in the sentence"),  # not a line marker
        ("<Thought>t</Thought><Output>3</Output>", "3"),
        ("just text", "just text"),
    ],
)
def test_none_answer_rule(text, answer):
    p = NONE.parse(text)
    assert p.thought is None and p.answer == answer
    for word in ("Answer:", "Output:", "<Output>"):
        assert word not in p.answer


def test_answer_bounds_per_format():
    text = "<think>a</think>b c"
    assert text[slice(*THINK.answer_bounds(text))] == "b c"
    text = "<Thought>a</Thought><Output>b</Output>"
    assert text[slice(*MARCO.answer_bounds(text))] == "b"
    text = "a\nAnswer: b"
    assert text[slice(*NONE.answer_bounds(text))] == "b"
    assert NONE.answer_bounds("no marker") is None and THINK.answer_bounds("<think>open") is None


def test_eval_scoring_reads_the_formats_answer():
    assert extract_answer("<think>maybe 3, or 5</think>\nIt is 4 apples.", THINK) == "4"
    assert extract_answer("3 + 4 = 7 so 7\nAnswer: 8", NONE) == "8"
    assert extract_answer("3 + 4 = 7\nno marker 9", NONE) == "9"
    assert extract_answer("<Thought>9</Thought><Output>4</Output>") == "4"  # Marco-o1's, as before


# -- streaming -----------------------------------------------------------------------


def _split(fmt, text, chunk):
    splitter = splitter_for(fmt)
    parts = []
    for i in range(0, len(text), chunk):
        parts += splitter.feed(text[i : i + chunk])
    parts += splitter.close()
    joined = {}
    for channel, piece in parts:
        joined[channel] = joined.get(channel, "") + piece
    return joined


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 100])
def test_think_splitter_matches_the_parser(chunk):
    text = "<think>\nfirst add\n\nthen check\n</think>\n\nIt is 4.\n"
    assert _split(THINK, text, chunk) == {REASONING: "first add\n\nthen check", CONTENT: "It is 4."}
    parsed = THINK.parse(text)
    assert (parsed.thought, parsed.answer) == ("first add\n\nthen check", "It is 4.")


@pytest.mark.parametrize("chunk", [1, 5, 100])
def test_none_splitter_drafts_then_answers(chunk):
    text = "6 * 7 = 42\n\nOutput: 42\n\nOutput: 42"
    assert _split(NONE, text, chunk) == {DRAFT: text, CONTENT: "42"}


def test_terminal_stream_for_think_and_none(capsys):
    for fmt, text, answer, dimmed in (
        (THINK, "<think>hmm</think>\n4", "4\n", "hmm"),
        (NONE, "6*7=42\nAnswer: 42", "42\n", "6*7=42"),
    ):
        buf = io.StringIO()
        stream = AnswerStream(
            answer_to_stdout=True, thought_console=Console(file=buf, color_system=None), reasoning=fmt
        )
        for ch in text:
            stream.feed(ch)
        stream.close()
        assert capsys.readouterr().out == answer
        assert dimmed in buf.getvalue() and "Answer:" not in answer and "think" not in buf.getvalue()


def test_a_draft_without_marker_is_not_shown_twice_on_a_terminal(capsys):
    """No Answer: line: the whole draft is the answer, and the terminal already
    shows it dimmed, so stdout gets only the line end; with stderr elsewhere
    (no thought console) stdout gets the answer."""
    for console, out in ((Console(file=io.StringIO(), color_system=None), "\n"), (None, "The sky is blue.\n")):
        stream = AnswerStream(answer_to_stdout=True, thought_console=console, reasoning=NONE)
        for ch in "The sky is blue.":
            stream.feed(ch)
        stream.close()
        assert capsys.readouterr().out == out
        assert stream.wrote_answer
        if console is not None:
            assert "The sky is blue." in console.file.getvalue()


# -- search with an R1-style model ---------------------------------------------------------


def _texts(root):
    return [n.text for n in root.walk()]


def test_search_steps_stop_at_think_end_and_answer_ends_at_eos():
    backend = ScriptedBackend(style="think")
    result = run_search(backend, backend.tokenize("q"), SearchSettings(simulations=8, seed=1), reasoning=THINK)
    assert result.complete
    assert all("</Output>" not in r.stop.value for r in result.rollouts)
    # a step that reaches </think> ends there (as </Thought> does for Marco-o1)
    for text in _texts(result.root):
        if "</think>" in text:
            assert text.endswith("</think>") or text.split("</think>", 1)[0] == ""
    parsed = THINK.parse(result.answer_text)
    assert parsed.has_tags and parsed.thought and parsed.answer and "<" not in parsed.answer
    for request in backend.requests:
        assert "</Thought>" not in [s.text for s in request.stops]


def test_reflection_replaces_think_end():
    backend = ScriptedBackend(style="think")
    settings = SearchSettings(simulations=6, seed=2, reflection=True)
    result = run_search(backend, backend.tokenize("q"), settings, reasoning=THINK)
    reflected = [n for n in result.root.walk() if n.reflection]
    assert reflected
    for node in reflected:
        assert REFLECTION_PHRASE in node.text and "</think>" not in node.text


def test_value_span_output_covers_the_text_after_think_end():
    backend = ScriptedBackend(style="think")
    result = run_search(
        backend,
        backend.tokenize("q"),
        SearchSettings(simulations=4, seed=3, value_span=ValueSpan.OUTPUT),
        reasoning=THINK,
    )
    start, end = output_span(result.tokens, backend.detokenize, THINK)
    assert backend.detokenize(result.tokens[:start]).endswith("</think>")
    assert end == len(result.tokens) and start < end


# -- the reasoner with a template that opens <think> ---------------------------------

R1_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}<|Assistant|><think>\n{% endif %}"
)


def _r1(backend) -> Reasoner:
    entry = ModelEntry(name="r1", path="r1.gguf", reasoning=Reasoning.THINK)
    return Reasoner(ResolvedModel("r1", None, Path("r1.gguf"), entry), backend=backend)


def test_reasoner_puts_the_opened_think_tag_back():
    backend = ScriptedBackend(style="think", opened=True, chat_template=R1_TEMPLATE)
    reasoner = _r1(backend)
    prompt = reasoner.prompt_text("q")
    assert prompt.endswith("<think>\n") and "<|system|>" not in prompt  # no system prompt for R1
    pieces: list[str] = []
    answer = reasoner.ask("q", mode=Mode.COT, on_text=pieces.append)
    assert "".join(pieces).startswith("<think>\n") and answer.text.startswith("<think>\n")
    assert answer.thought and answer.answer and "think>" not in answer.answer
    assert answer.to_json()["thought"] == answer.thought
    search = reasoner.ask("q", mode=Mode.MCTS, search=SearchSettings(simulations=4))
    assert search.thought and search.answer and "think>" not in search.answer


def test_reasoner_without_a_format_gives_null_thought():
    backend = ScriptedBackend()  # writes Marco tags, but the entry says "none"
    entry = ModelEntry(name="plain", path="p.gguf")
    answer = Reasoner(ResolvedModel("plain", None, Path("p.gguf"), entry), backend=backend).ask("q", mode=Mode.COT)
    assert answer.thought is None and answer.to_json()["thought"] is None
    assert "<" not in answer.answer


# -- never half a character ------------------------------------------------------------


class ByteTokens:
    """Token-level fake: every token is one byte of UTF-8."""

    def __init__(self, text: str) -> None:
        self.data = text.encode("utf-8")

    def detokenize(self, tokens):
        return bytes(self.data[t] for t in tokens).decode("utf-8", errors="replace")


@pytest.mark.parametrize("cut,kept", [(2, 2), (3, 2), (4, 2), (5, 5), (6, 5), (7, 5), (8, 8)])
def test_whole_character_prefix(cut, kept):
    fake = ByteTokens("ab天气")  # a, b, then two 3-byte characters
    tokens = list(range(cut))
    assert whole_character_prefix(tokens, fake.detokenize) == kept
    assert "\ufffd" not in whole_character_text(tokens, fake.detokenize)


def test_every_pick_keys_its_answer_by_the_models_format():
    """The picks' answers are keyed as the vote keys rollouts: after ``</think>``,
    not the whole text read as Marco-o1's."""
    backend = ScriptedBackend(style="think")
    settings = SearchSettings(simulations=8, seed=1, pick=Pick.VOTE)
    result = run_search(backend, backend.tokenize("q"), settings, reasoning=THINK)
    assert result.vote is not None and result.vote.answer_key is not None
    assert result.pick(Pick.VOTE).answer_key == result.vote.answer_key
    for choice in result.picks:
        assert choice.answer_key == answer_key(choice.text, StopReason.EOS, THINK)
