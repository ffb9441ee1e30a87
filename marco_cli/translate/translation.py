"""Translation use case (docs/algorithm.md section 4), without terminal I/O.

Marco-o1's showcase is colloquial translation: "这个鞋拥有踩屎感" becomes
"This shoe has a comfortable sole", because the thought reasons about the
slang before the output commits to a rendering. The published prompt is a
plain user turn ``翻译到英文：<text>`` with the model's normal system prompt,
so that is what we send, generalised to other languages.

Input is cut into *units*: one per line, or one per blank-line separated block
with ``--paragraph``. Each unit is an independent question to the reasoner
(CoT at temperature 0 is deterministic, so a line translates the same wherever
it appears). A unit that fails carries its error instead of a translation, so
the caller can keep one output line per input line.

Guards, so a translation never fails silently:

- a token cap per unit, proportional to its length: ``CAP_BASE`` tokens plus
  ``CAP_PER_TOKEN`` per source token, plus ``CAP_THOUGHT`` for a model with a
  thought format (``CAP_STEPS`` without one), never more than ``--max-tokens``.
  A unit that still runs into it failed (the model rambles or loops) and is
  reported, not printed. When ``--max-tokens`` is the smaller limit, it is the
  one the user chose: what was generated is printed;
- an answer that starts by repeating the prompt is stripped of it;
- text cut by a cap ends on a whole character (``backends/utf8.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..core.errors import MarcoError, ModelLoadError, ModelNotFoundError
from ..core.settings import GenerationSettings, Mode, SearchSettings
from ..reasoner import Answer, Interrupted, Reasoner
from .glossary import Glossary, Term
from .languages import Language

CAP_BASE = 32  # tokens every unit gets: a short line may still need a sentence
CAP_PER_TOKEN = 4  # per source token: translations run about 1-3x the source's tokens
CAP_THOUGHT = 512  # extra room for a model with a thought format: it reasons before it answers
CAP_STEPS = 128  # a model without one is asked for its steps and an Answer: line


def token_cap(source_tokens: int, max_tokens: int, *, thinks: bool) -> int:
    """Most tokens one unit may generate (documented in the README)."""
    cap = CAP_BASE + CAP_PER_TOKEN * source_tokens + (CAP_THOUGHT if thinks else CAP_STEPS)
    return max(1, min(max_tokens, cap))


# -- prompt ----------------------------------------------------------------

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA_HANGUL = re.compile(r"[\u3040-\u30ff\u1100-\u11ff\uac00-\ud7af]")


def looks_chinese(text: str) -> bool:
    """Han characters and no kana/hangul (Japanese and Korean use Han too)."""
    return bool(_HAN.search(text)) and not _KANA_HANGUL.search(text)


def build_prompt(
    text: str,
    target: Language,
    source: Language | None = None,
    terms: tuple[Term, ...] = (),
) -> str:
    """The user turn for one unit.

    Chinese source text gets Marco-o1's published form verbatim
    (``翻译到英文：<text>``), the case the model was shown to handle; any other
    source gets the same instruction in English, which the Qwen2 base follows
    at least as well and which does not pull ``<Output>`` towards Chinese (the
    system prompt says the output follows the user's language). Without
    ``--from`` the source is not named: the model recognises it. Glossary terms
    go on a line before the instruction, so the text to translate stays last,
    right after the colon, as in the published form.
    """
    chinese = (source.code == "zh") if source is not None else looks_chinese(text)
    lines = []
    if terms:
        pairs = [f'"{t.source}" -> "{t.rendering}"' for t in terms]
        lines.append(
            ("请使用以下译法：" + "；".join(pairs)) if chinese else ("Use these renderings: " + "; ".join(pairs))
        )
    if chinese:
        lines.append(f"{f'从{source.zh}' if source else ''}翻译到{target.zh}：{text}")
    else:
        lines.append(f"Translate {f'from {source.name} ' if source else ''}into {target.name}: {text}")
    return "\n".join(lines)


# -- units -----------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    line: int  # 1-based number of the unit's first input line
    source: str  # the text to translate; "" for a blank line
    error: str | None = None  # set when the input itself is unusable (bad UTF-8)

    @property
    def needs_model(self) -> bool:
        return self.error is None and bool(self.source.strip())


def _decode_lines(data: bytes) -> list[Unit]:
    """Lines of ``data`` as units; a final newline ends the last line rather
    than starting an empty one (``wc -l`` counting). Lines are decoded one by
    one, so one bad byte spoils its line only."""
    if not data:
        return []
    raw = data.split(b"\n")
    if raw[-1] == b"":
        raw.pop()
    units = []
    for number, chunk in enumerate(raw, start=1):
        chunk = chunk[:-1] if chunk.endswith(b"\r") else chunk  # CRLF files
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            message = f"not valid UTF-8 (byte 0x{chunk[exc.start]:02x} at column {exc.start + 1})"
            units.append(Unit(number, "", message))
            continue
        if number == 1:
            text = text.removeprefix("\ufeff")  # a BOM is not text to translate
        units.append(Unit(number, text if text.strip() else ""))
    return units


def split_lines(data: bytes) -> list[Unit]:
    """One unit per input line, blank lines included (they stay blank)."""
    return _decode_lines(data)


def split_paragraphs(data: bytes) -> list[Unit]:
    """One unit per block of non-blank lines; any run of blank lines separates
    blocks. A block with an undecodable line fails as a whole."""
    blocks: list[Unit] = []
    current: list[Unit] = []

    def close() -> None:
        if current:
            bad = next((u for u in current if u.error), None)
            error = None
            if bad is not None:  # reported at the block's first line, so name the bad one
                error = bad.error if bad.line == current[0].line else f"line {bad.line} is {bad.error}"
            text = "\n".join(u.source for u in current if u.error is None)
            blocks.append(Unit(current[0].line, text, error))
            current.clear()

    for unit in _decode_lines(data):
        if unit.needs_model or unit.error:
            current.append(unit)
        else:
            close()
    close()
    return blocks


def tidy(answer: str, *, paragraph: bool) -> str:
    """Shape an answer for output: one line in line mode (so the output has as
    many lines as the input), no blank lines inside a block in paragraph mode
    (blank lines are what separates blocks)."""
    # every character some tool treats as a line break, not just "\n"
    answer = _BREAKS.sub("\n", answer.replace("\r\n", "\n"))
    if paragraph:
        lines = [line.rstrip() for line in answer.split("\n")]
        return "\n".join(line for line in lines if line.strip()).strip()
    return re.sub(r"\s*\n\s*", " ", answer).strip()


_BREAKS = re.compile("[\r\v\f\x1c-\x1e\x85\u2028\u2029]")
_SPACE = re.compile(r"\s+")


_ECHO_TRIM = " \t\n:：-—.。,，"
_LABEL = re.compile(r"^[^\n:：]{0,24}[:：]")  # "翻译为英文：", "Translation:" before an echoed text


def strip_echo(answer: str, prompt: str, source: str | None = None, *, other_language: bool = False) -> str:
    """``answer`` without a leading copy of the prompt (small models often
    start by repeating ``翻译到英文：<text>``). Each line of the prompt (the
    glossary line, the instruction with the text) may be echoed, in order, and
    so may the source text itself after a short label of the model's own
    wording (``翻译为英文：<text> <translation>``); spacing differences do not
    matter. With ``other_language`` (the source is known not to be in the
    target language) a labelled copy of the source with nothing after it is
    no translation at all: the result is empty."""
    rest = answer.lstrip()
    for line in (ln.strip() for ln in prompt.split("\n")):
        cut = _echo_end(rest, line) if line else None
        if cut is not None:
            rest = rest[cut:].lstrip(_ECHO_TRIM)
    label = _LABEL.match(rest) if source and source.strip() else None
    if label and source:
        # Only behind a label: a bare copy of the source may be the right
        # answer (English to English), and "Translation: <source>" alone too.
        head = rest[label.end() :].lstrip()
        cut = _echo_end(head, source.strip())
        if cut is not None and (other_language or head[cut:].strip(_ECHO_TRIM)):
            rest = head[cut:].lstrip(_ECHO_TRIM)
    return rest


def _echo_end(text: str, line: str) -> int | None:
    """Where ``text`` ends its leading copy of ``line`` (whitespace-insensitive)."""
    want = _SPACE.sub("", line)
    got, i = "", 0
    while i < len(text) and len(got) < len(want):
        if not text[i].isspace():
            got += text[i]
        i += 1
    return i if got == want else None


# -- use case ----------------------------------------------------------------


class TranslationFailed(MarcoError):
    """Some units could not be translated; each was already reported."""


@dataclass(frozen=True)
class TranslateOptions:
    target: Language
    source: Language | None = None
    glossary: Glossary | None = None
    mode: Mode = Mode.COT
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    paragraph: bool = False


@dataclass(frozen=True)
class Translation:
    unit: Unit
    translation: str = ""
    thought: str | None = ""  # None: the model has no thought format
    error: str | None = None
    missed: tuple[Term, ...] = ()  # glossary terms whose rendering is absent
    answer: Answer | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "line": self.unit.line,
            "source": self.unit.source,
            "translation": self.translation,
            "thought": self.thought,
        }
        if self.error is not None:
            data["error"] = self.error
        return data


# Errors that concern the whole run, not one line: stop instead of repeating
# the same failure for every line.
_FATAL = (Interrupted, ModelLoadError, ModelNotFoundError)


class Translator:
    def __init__(self, reasoner: Reasoner, options: TranslateOptions) -> None:
        self.reasoner = reasoner
        self.options = options

    def load(self) -> None:
        """Load the model (otherwise loaded by the first line that needs it)."""
        _ = self.reasoner.backend

    @property
    def what(self) -> str:
        return "block" if self.options.paragraph else "line"

    def cap(self, unit: Unit) -> int:
        """``token_cap`` for this unit, its length counted in the model's tokens."""
        n = len(self.reasoner.backend.tokenize(unit.source, special=False))
        return token_cap(n, self.options.generation.max_tokens, thinks=self.reasoner.reasoning.has_thought)

    def prompt(self, unit: Unit) -> tuple[str, tuple[Term, ...]]:
        opts = self.options
        terms = opts.glossary.find(unit.source) if opts.glossary else ()
        return build_prompt(unit.source, opts.target, opts.source, terms), terms

    def translate(self, unit: Unit, on_text: Callable[[str], None] | None = None) -> Translation:
        if unit.error is not None:
            return Translation(unit, error=unit.error)
        if not unit.needs_model:
            return Translation(unit)
        prompt, terms = self.prompt(unit)
        opts = self.options
        cap = self.cap(unit)
        try:
            answer = self.reasoner.ask(
                prompt,
                mode=opts.mode,
                generation=replace(opts.generation, max_tokens=cap),
                search=opts.search.with_(max_tokens=cap),
                on_text=on_text,
            )
        except _FATAL:
            raise
        except MarcoError as exc:
            return Translation(unit, error=str(exc))
        if answer.truncated and cap < opts.generation.max_tokens:
            # The length-proportional cap stopped it, not the user's --max-tokens:
            # the model rambles or loops, and its text is no translation.
            error = f"the translation did not end within {cap} tokens (the cap for this {self.what})"
            return Translation(unit, thought=answer.thought, error=error, answer=answer)
        other = (
            opts.source.code != opts.target.code
            if opts.source
            else (looks_chinese(unit.source) and opts.target.code != "zh")
        )
        echo_free = strip_echo(answer.answer, prompt, unit.source, other_language=other)
        text = tidy(echo_free, paragraph=opts.paragraph)
        if not text:
            return Translation(unit, thought=answer.thought, error="the model gave no translation", answer=answer)
        missed = tuple(t for t in terms if not t.used_in(text))
        return Translation(unit, text, answer.thought, missed=missed, answer=answer)
