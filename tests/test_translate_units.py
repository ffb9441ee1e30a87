"""`marco translate` pieces that need no model: languages, prompt, glossary,
line/paragraph splitting, output shaping, and the command's line bookkeeping
driven by a scripted backend. The real-model tests are in test_translate.py."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from marco_cli.backends.base import BackendStats, Continuation, ModelInfo, StopReason
from marco_cli.cli import app
from marco_cli.core.errors import BackendError, ConfigError, ContextOverflowError, UsageError
from marco_cli.formats.reasoning import Reasoning
from marco_cli.reasoner import Reasoner
from marco_cli.translate.glossary import load_glossary, parse_glossary
from marco_cli.translate.languages import language
from marco_cli.translate.translation import (
    CAP_BASE,
    CAP_PER_TOKEN,
    CAP_THOUGHT,
    build_prompt,
    looks_chinese,
    split_lines,
    split_paragraphs,
    strip_echo,
    tidy,
    token_cap,
)

# -- languages and prompt ------------------------------------------------------


@pytest.mark.parametrize("spec", ["en", "EN", "English", "english", "英文", " en "])
def test_language_by_code_or_name(spec):
    assert language(spec).code == "en"


def test_unknown_language_lists_codes():
    with pytest.raises(UsageError) as err:
        language("klingon")
    message = str(err.value)
    assert "unknown language 'klingon' for --to" in message and "en, zh, ja" in message
    assert "\n" not in message


def test_published_prompt_form_for_chinese():
    assert build_prompt("这个鞋拥有踩屎感", language("en")) == "翻译到英文：这个鞋拥有踩屎感"
    assert build_prompt("好", language("en"), language("zh")) == "从中文翻译到英文：好"


def test_english_form_for_other_sources():
    assert build_prompt("C'est la vie", language("de")) == "Translate into German: C'est la vie"
    assert build_prompt("hi", language("fr"), language("en")) == "Translate from English into French: hi"
    # --from wins over what the text looks like
    assert build_prompt("漢字", language("en"), language("ja")).startswith("Translate from Japanese")


def test_chinese_detection_leaves_japanese_and_korean_out():
    assert looks_chinese("这个鞋拥有踩屎感 👟")
    assert not looks_chinese("これは漢字です")
    assert not looks_chinese("한국어 漢字")
    assert not looks_chinese("plain text")


def test_glossary_terms_come_before_the_instruction(tmp_path):
    g = parse_glossary('[terms]\n"踩屎感" = "comfortable, cushioned feel"\n', tmp_path / "g.toml")
    prompt = build_prompt("这个鞋拥有踩屎感", language("en"), terms=g.find("这个鞋拥有踩屎感"))
    assert prompt == '请使用以下译法："踩屎感" -> "comfortable, cushioned feel"\n翻译到英文：这个鞋拥有踩屎感'
    prompt = build_prompt(
        "that party was lit", language("fr"), terms=parse_glossary('[terms]\nlit = "génial"', tmp_path / "g").terms
    )
    assert prompt == 'Use these renderings: "lit" -> "génial"\nTranslate into French: that party was lit'


# -- glossary ------------------------------------------------------------------


def _glossary(tmp_path: Path, text: str):
    path = tmp_path / "glossary.toml"
    path.write_text(text, encoding="utf-8")
    return load_glossary(path)


def test_glossary_find_and_check(tmp_path):
    g = _glossary(
        tmp_path, '[terms]\n"踩屎感" = "Comfortable Feel"\n"踩屎" = "x"\nlit = "amazing"\nYYDS = "the greatest"\n'
    )
    assert [t.source for t in g.find("这个鞋拥有踩屎感")] == ["踩屎感"]  # not the shorter overlap
    assert [t.source for t in g.find("踩屎 and 踩屎感")] == ["踩屎", "踩屎感"]
    assert g.find("a little thing") == ()  # word boundary for Latin terms
    assert [t.source for t in g.find("It was LIT, yyds")] == ["lit", "YYDS"]  # case-insensitive
    term = g.find("踩屎感")[0]
    assert term.used_in("a comfortable feel") and not term.used_in("poop")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[terms\n", "not valid TOML"),
        ('[terms]\n"a" = "b"\n[extra]\n', "top level: unknown key 'extra'"),
        ('title = "x"\n', "unknown key 'title'"),
        ('[terms]\n"踩屎感" = 3\n', "[terms].'踩屎感': expected a string, got int 3"),
        ('[terms]\n"a" = ""\n', "empty rendering"),
        ('[terms]\n"" = "b"\n', "empty term"),
        ("[terms]\n", "no terms defined"),
        ('terms = "x"\n', "[terms]: expected a table"),
        ("", "[terms]: missing"),
    ],
)
def test_glossary_errors_name_file_and_key(tmp_path, text, expected):
    with pytest.raises(ConfigError) as err:
        _glossary(tmp_path, text)
    assert str(tmp_path / "glossary.toml") in str(err.value) and expected in str(err.value)


def test_glossary_missing_file_and_bad_encoding(tmp_path):
    with pytest.raises(ConfigError, match="glossary not found"):
        load_glossary(tmp_path / "nope.toml")
    (tmp_path / "latin1.toml").write_bytes('[terms]\n"café" = "x"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_glossary(tmp_path / "latin1.toml")


# -- splitting and shaping -----------------------------------------------------


def test_split_lines_keeps_blank_lines_and_numbers():
    units = split_lines("一\n\n  \nthree 👍\r\nfour".encode())
    assert [(u.line, u.source, u.needs_model) for u in units] == [
        (1, "一", True),
        (2, "", False),
        (3, "", False),
        (4, "three 👍", True),
        (5, "four", True),
    ]
    assert len(split_lines(b"a\n\n")) == 2  # a final newline ends the last line
    assert split_lines(b"") == []
    assert split_lines("\ufeffhello\n".encode())[0].source == "hello"


def test_a_bad_utf8_line_spoils_only_itself():
    units = split_lines(b"ok\nbad \xff here\nok again\n")
    assert [u.error for u in units] == [None, "not valid UTF-8 (byte 0xff at column 5)", None]


def test_split_paragraphs():
    units = split_paragraphs(b"\n\na\nb\n\n\n\nc\n\nd\n\xfe\n")
    assert [(u.line, u.source) for u in units] == [(3, "a\nb"), (8, "c"), (10, "d")]
    assert units[2].error == "line 11 is not valid UTF-8 (byte 0xfe at column 1)"


def test_tidy():
    assert tidy("  one\n two \r\n\nthree ", paragraph=False) == "one two three"
    assert tidy("one\n\n\ntwo  \n", paragraph=True) == "one\ntwo"
    assert tidy("a\u2028b\rc\x85d", paragraph=False) == "a b c d"
    assert tidy("a\u2029\u2029b", paragraph=True) == "a\nb"


# -- the command, on a scripted backend --------------------------------------


class ScriptedBackend:
    """Answers "T(<text>)" for the text after the instruction's colon. Text
    with BOOM fails, MULTI answers on two lines, EMPTY answers nothing, and a
    prompt longer than n_ctx characters overflows, like llama.cpp would."""

    def __init__(self, n_ctx: int = 4000) -> None:
        self.info = ModelInfo("scripted", "", n_ctx, 256, (), None)
        self.stats = BackendStats()
        self.prompts: list[str] = []
        self.max_tokens: list[int] = []  # the cap each unit was given
        self._prompt = ""

    def tokenize(self, text, *, special=True):
        return [ord(c) for c in text]

    def detokenize(self, tokens):
        return "".join(map(chr, tokens))

    def root(self, tokens):
        if len(tokens) > self.info.n_ctx:
            raise ContextOverflowError(f"the prompt has {len(tokens)} tokens; the context holds {self.info.n_ctx}")
        text = self.detokenize(tokens)
        self._prompt = text.rsplit("<|im_start|>user\n", 1)[1].split("<|im_end|>")[0]
        self.prompts.append(self._prompt)
        return 1

    def extend(self, requests, on_token=None):
        user = self._prompt
        if user.startswith(("Use these renderings", "请使用以下译法")):
            user = user.split("\n", 1)[1]  # the glossary line
        text = user.split(":", 1)[1].strip() if user.startswith("Translate") else user.split("：", 1)[1]
        if "BOOM" in text:
            raise BackendError("llama_decode failed")
        answer = "" if "EMPTY" in text else "first\nsecond" if "MULTI" in text else f"T({text})"
        if "GLOSS" in text:
            answer = "uses the comfortable feel"
        if "ECHO" in text:
            answer = f"{self._prompt} T({text})"
        out = f"<Thought>\nslang in {text}\n</Thought>\n<Output>\n{answer}\n</Output>"
        self.max_tokens.append(requests[0].max_tokens)
        stop = StopReason.OUTPUT_END
        if "RAMBLE" in text:  # runs on until the cap
            out, stop = "<Thought>\n" + "and so on " * 1000, StopReason.LENGTH
        if len(out) > requests[0].max_tokens:
            out, stop = out[: requests[0].max_tokens], StopReason.LENGTH
        for piece in out:
            if on_token:
                on_token(0, piece)
        return [Continuation(None, tuple(map(ord, out)), out, (1.0,) * len(out), stop)]

    def release(self, handle):
        pass

    def close(self):
        pass


@pytest.fixture
def scripted(monkeypatch, tmp_path):
    backend = ScriptedBackend()
    # The command checks that the model file exists before it builds the
    # Reasoner, which then never reads it: a placeholder keeps these tests
    # free of the embedded model. The scripted backend speaks Marco-o1's
    # format; the model entry says so.
    placeholder = tmp_path / "scripted.gguf"
    placeholder.write_bytes(b"")
    monkeypatch.setenv("MARCO_MODEL", str(placeholder))
    monkeypatch.setattr(
        "marco_cli.commands.translate.Reasoner",
        lambda model, runtime: Reasoner(as_marco(model), runtime, backend=backend),
    )
    return backend


def as_marco(model):
    return replace(model, entry=replace(model.entry, reasoning=Reasoning.MARCO))


def _invoke(args, stdin=None, model=None):
    return CliRunner().invoke(app, ["translate", *(["-m", model] if model else []), *args], input=stdin)


def test_lines_in_lines_out(scripted):
    result = _invoke(["--to", "en"], "踩屎感\n\nMULTI line\n  \nlast 🎉\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "T(踩屎感)\n\nfirst second\n\nT(last 🎉)\n"
    assert result.stderr == ""
    assert scripted.prompts[0] == "翻译到英文：踩屎感"


def test_failed_lines_keep_their_place_and_exit_1(scripted):
    result = _invoke(["--to", "en"], "one\nBOOM\n\xff\nEMPTY\nfive\n".encode("latin-1"))
    assert result.stdout == "T(one)\n\n\n\nT(five)\n"
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "marco: line 2: llama_decode failed"
    assert lines[1] == "marco: line 3: not valid UTF-8 (byte 0xff at column 1)"
    assert lines[2].startswith("marco: line 4: the model gave no translation")
    assert lines[3] == "marco: error: 3 of 5 lines could not be translated"


def test_context_overflow_is_a_line_error(scripted):
    scripted.info = ModelInfo("scripted", "", 300, 256, (), None)
    result = _invoke(["--to", "en"], "short\n" + "long " * 100 + "\nshort again\n")
    assert result.stdout == "T(short)\n\nT(short again)\n"
    assert "marco: line 2: the prompt has" in result.stderr and result.exit_code == 1


def test_json_lines(scripted):
    result = _invoke(["--to", "en", "--json"], "a\n\nBOOM\n")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows[0] == {"line": 1, "source": "a", "translation": "T(a)", "thought": "slang in a"}
    assert rows[1] == {"line": 2, "source": "", "translation": "", "thought": ""}
    assert rows[2]["error"] == "llama_decode failed" and rows[2]["translation"] == ""
    assert result.exit_code == 1


def test_paragraph_mode(scripted):
    result = _invoke(["--to", "en", "--paragraph"], "\nfirst\nblock\n\n\n\nsecond\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "T(first\nblock)\n\nT(second)\n"
    assert scripted.prompts == ["Translate into English: first\nblock", "Translate into English: second"]


def test_glossary_hint_and_warning(scripted, tmp_path):
    path = tmp_path / "g.toml"
    path.write_text('[terms]\n"踩屎感" = "comfortable feel"\nyyds = "the GOAT"\n', encoding="utf-8")
    result = _invoke(["--to", "en", "--glossary", str(path)], "GLOSS 踩屎感\nyyds\nnothing\n")
    assert result.exit_code == 0
    assert scripted.prompts[1] == 'Use these renderings: "yyds" -> "the GOAT"\nTranslate into English: yyds'
    assert result.stderr == "marco: line 2: glossary term 'yyds' -> 'the GOAT' was not used\n"


def test_show_thoughts_go_to_stderr(scripted):
    result = _invoke(["--to", "en", "--show-thoughts"], "a\nb\n")
    assert result.stdout == "T(a)\nT(b)\n"
    assert result.stderr == "line 1 thought:\nslang in a\nline 2 thought:\nslang in b\n"


def test_argument_and_whole_run_errors(scripted, tmp_path):
    assert _invoke(["--to", "fr", "hello"]).stdout == "T(hello)\n"
    bad = _invoke(["--to", "xx", "hello"])
    assert bad.exit_code == 2 and bad.stderr.startswith("marco: error: unknown language 'xx' for --to")
    bad = _invoke(["--to", "en", "--from", "xx", "hello"])
    assert bad.exit_code == 2 and "for --from" in bad.stderr
    bad = _invoke(["--to", "en", "--glossary", str(tmp_path / "none.toml"), "hi"])
    assert bad.exit_code == 2 and "glossary not found" in bad.stderr and bad.stdout == ""
    assert _invoke(["--to", "en", "  "]).exit_code == 2
    assert scripted.prompts == ["Translate into French: hello"]


def test_empty_input_is_empty_output(scripted):
    result = _invoke(["--to", "en"], "")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    result = _invoke(["--to", "en"], "\n\n")
    assert (result.exit_code, result.stdout) == (0, "\n\n")
    assert scripted.prompts == []


def test_ctrl_c_keeps_what_was_printed(scripted, monkeypatch):
    real_extend = scripted.extend

    def extend(requests, on_token=None):
        if "STOP" in scripted._prompt:
            raise KeyboardInterrupt
        return real_extend(requests, on_token)

    monkeypatch.setattr(scripted, "extend", extend)
    result = _invoke(["--to", "en"], "one\nSTOP\nthree\n")
    assert result.exit_code == 130
    assert result.stdout == "T(one)\n"
    assert "interrupted" in result.stderr


def test_each_line_gets_a_cap_proportional_to_its_length(scripted):
    result = _invoke(["--to", "en"], "ab\n" + "x" * 200 + "\n")
    assert result.exit_code == 0, result.stderr
    # one token per character here; the scripted model thinks first (Marco-o1's format)
    assert scripted.max_tokens == [token_cap(2, 1024, thinks=True), token_cap(200, 1024, thinks=True)]
    assert scripted.max_tokens == [CAP_BASE + 2 * CAP_PER_TOKEN + CAP_THOUGHT, 1024]  # never above --max-tokens


def test_a_line_that_hits_its_cap_is_a_line_error(scripted):
    result = _invoke(["--to", "en"], "one\nRAMBLE on\nthree\n")
    assert result.stdout == "T(one)\n\nT(three)\n"
    assert result.exit_code == 1
    cap = token_cap(len("RAMBLE on"), 1024, thinks=True)
    assert (
        result.stderr.splitlines()[0]
        == f"marco: line 2: the translation did not end within {cap} tokens (the cap for this line)"
    )
    assert "and so on" not in result.stdout


def test_paragraph_blocks_get_the_same_cap(scripted):
    result = _invoke(["--to", "en", "--paragraph", "--max-tokens", "600"], "RAMBLE\nmore\n\nfine\n")
    assert result.exit_code == 1 and result.stdout == "\n\nT(fine)\n"
    cap = token_cap(len("RAMBLE\nmore"), 600, thinks=True)
    assert scripted.max_tokens[0] == cap
    assert result.stderr.startswith(
        f"marco: line 1: the translation did not end within {cap} tokens (the cap for this block)"
    )


def test_an_echoed_prompt_is_stripped(scripted):
    result = _invoke(["--to", "en"], "今天 ECHO\nECHO again\n")
    assert result.stdout == "T(今天 ECHO)\nT(ECHO again)\n"
    assert (
        strip_echo("翻译到英文：今天天气很好 The weather is nice.", "翻译到英文：今天天气很好")
        == "The weather is nice."
    )
    assert strip_echo("The weather is nice.", "翻译到英文：今天天气很好") == "The weather is nice."
    # the source again behind the model's own label, then the translation
    assert (
        strip_echo("翻译为英文：今天天气很好. Nice weather", "翻译到英文：今天天气很好", "今天天气很好")
        == "Nice weather"
    )
    assert strip_echo("Hello there", "Translate into English: hola", "hola") == "Hello there"
    # a bare or labelled copy of the source alone may be the translation (en -> en)
    assert strip_echo("I am blue", "Translate into English: I am blue", "I am blue") == "I am blue"
    assert strip_echo("Translate into English: I am blue", "Translate into English: I am blue", "I am blue") == ""
    assert (
        strip_echo("Translation: I am blue", "Translate into English: I am blue", "I am blue")
        == "Translation: I am blue"
    )
    assert strip_echo("I am blue", "Translate into French: x", "I am blue") == "I am blue"
    # Chinese to English: the source behind a label and nothing more is no translation
    assert (
        strip_echo("翻译为英文：今天天气很好.", "翻译到英文：今天天气很好", "今天天气很好", other_language=True) == ""
    )
    assert (
        strip_echo("翻译为英文：今天天气很好.", "翻译到英文：今天天气很好", "今天天气很好")
        == "翻译为英文：今天天气很好."
    )


def test_messages_go_above_the_progress_bar_on_a_terminal(scripted, monkeypatch):
    # CliRunner's stderr is no terminal, so Rich draws no bar here; what this
    # checks is that with the progress path on, stdout stays clean and the
    # per-line messages still reach stderr.
    monkeypatch.setattr("marco_cli.commands.translate.is_tty", lambda stream: stream is sys.stderr)
    result = _invoke(["--to", "en"], "a\nBOOM\nc\n")
    assert result.stdout == "T(a)\n\nT(c)\n"
    assert "marco: line 2: llama_decode failed" in result.stderr


@pytest.mark.model
def test_a_model_without_a_thought_format(monkeypatch):
    """The embedded model's own entry (reasoning = "none"): no thought in JSON,
    one line saying so for --show-thoughts, and no marker words in the output."""
    backend = ScriptedBackend()
    monkeypatch.setattr(
        "marco_cli.commands.translate.Reasoner", lambda model, runtime: Reasoner(model, runtime, backend=backend)
    )
    result = _invoke(["--to", "en", "--json"], "a\nb\n", model="tiny")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["translation"], r["thought"]) for r in rows] == [("T(a)", None), ("T(b)", None)]
    result = _invoke(["--to", "en", "--show-thoughts"], "a\nb\n", model="tiny")
    assert result.stdout == "T(a)\nT(b)\n"
    assert result.stderr.splitlines() == [
        "marco: smollm2-135m:Q4_1 has no thought format; the answer is what follows its last 'Answer:' line"
    ]


def test_a_smaller_max_tokens_is_the_users_limit(scripted):
    """Below a line's cap, --max-tokens is what the user asked for: the text
    generated up to it is printed (a fast preview), not reported."""
    result = _invoke(["--to", "en", "--max-tokens", "40"], "RAMBLE\n")
    assert result.exit_code == 0, result.stderr
    assert scripted.max_tokens == [40] and result.stdout.startswith("and so on")
