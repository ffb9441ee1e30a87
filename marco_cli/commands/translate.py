"""``marco translate``: slang-aware translation, one-shot or line by line in a pipe.

stdout gets exactly one line per input line (one block per block with
``--paragraph``), in order, blank lines kept, so ``paste src.txt <(marco
translate --to en < src.txt)`` lines up. Everything else (per-line errors,
glossary warnings, thoughts, progress) goes to stderr.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from ..core.errors import UsageError
from ..translate.glossary import load_glossary
from ..translate.languages import language
from ..reasoner import Reasoner, no_format_notice
from ..core.settings import Mode
from ..translate.translation import TranslateOptions, Translation, TranslationFailed, Translator, Unit, split_lines, split_paragraphs
from ..ui.console import err_console, is_tty, notice
from ..ui.progress import LineProgress
from ..ui.safe_text import for_terminal
from ..ui.stream import AnswerStream
from . import _options as o
from ._io import read_stdin_bytes, stdin_is_piped

@o.settings_flags(mode=Mode.COT)
def translate(
    text: Annotated[Optional[str], typer.Argument(metavar="TEXT", help="Text to translate; without it (or with '-') stdin is translated line by line.", show_default=False)] = None,
    to: Annotated[str, typer.Option("--to", metavar="LANG", help="Target language: a code (en, zh, ja, ko, fr, de, es, ru, pt, it, ...) or a name.", show_default=False)] = ...,
    source: Annotated[Optional[str], typer.Option("--from", metavar="LANG", help="Source language [default: recognised by the model].", show_default=False)] = None,
    glossary: Annotated[Optional[str], typer.Option("--glossary", metavar="FILE", help="TOML file with a [terms] table: \"slang\" = \"preferred rendering\".", show_default=False)] = None,
    paragraph: Annotated[bool, typer.Option("--paragraph", help="Translate blank-line separated blocks instead of single lines.")] = False,
    show_thoughts: o.ShowThoughtsOpt = False,
    as_json: o.JsonOpt = False,
    *,
    flags: o.Flags,
) -> None:
    """Translate colloquial text (slang, idioms) by reasoning about it first.

    One output line per input line; with --json, one object per line:
    {line, source, translation, thought} (JSON Lines). --max-tokens is per
    line, and each line gets less, in proportion to its length."""
    runtime = flags.runtime()
    options = TranslateOptions(
        target=language(to, option="--to"),
        source=language(source, option="--from") if source else None,
        glossary=load_glossary(glossary) if glossary else None,
        mode=flags.mode,
        generation=flags.generation(),
        search=flags.search(),
        paragraph=paragraph,
    )
    units = _read_units(text, paragraph)
    choice = o.choose(flags)
    if choice.notice and any(u.needs_model for u in units):
        notice(choice.notice)
    reasoner = Reasoner(choice.model, runtime)
    if show_thoughts and not reasoner.reasoning.has_thought and any(u.needs_model for u in units):
        notice(no_format_notice(choice.model))
    try:
        failed = _run(Translator(reasoner, options), units, as_json=as_json, show_thoughts=show_thoughts)
    finally:
        reasoner.close()
    if failed:
        what = "blocks" if paragraph else "lines"
        raise TranslationFailed(f"{failed} of {len(units)} {what} could not be translated")


def _read_units(text: str | None, paragraph: bool) -> list[Unit]:
    """TEXT when given (stdin is then left alone: `while read l; do marco
    translate "$l"; done < file` must not swallow the file), else stdin."""
    if text is not None and text != "-":
        if not text.strip():
            raise UsageError("the text to translate is empty")
        # argv bytes that are not UTF-8 arrive as lone surrogates; give the
        # bytes back so the splitter reports them like bad stdin bytes
        data = text.encode("utf-8", "surrogateescape")
    elif text == "-" or stdin_is_piped():
        data = read_stdin_bytes()
    else:
        raise UsageError("no text given: pass it as an argument or pipe lines on stdin")
    return split_paragraphs(data) if paragraph else split_lines(data)


def _run(translator: Translator, units: list[Unit], *, as_json: bool, show_thoughts: bool) -> int:
    """Translate every unit, writing each result as soon as it is ready (a
    pipe reader sees lines arrive). Returns how many units failed."""
    todo = sum(u.needs_model for u in units)
    if todo:
        translator.load()  # now: a model that cannot load is one error, not one per line
    err_tty = is_tty(sys.stderr)
    # One line on a terminal with --show-thoughts: stream the thought live, like `marco ask`.
    stream_live = show_thoughts and err_tty and todo == 1
    paragraph = translator.options.paragraph
    failed = 0
    live = err_tty and not stream_live
    what = "blocks" if paragraph else "lines"
    with LineProgress(todo, live=live, stdout_is_terminal=is_tty(sys.stdout), what=what) as progress:
        for index, unit in enumerate(units):
            stream = None
            if stream_live and unit.needs_model:
                stream = AnswerStream(
                    answer_to_stdout=False, thought_console=err_console(), reasoning=translator.reasoner.reasoning
                )
            result = translator.translate(unit, on_text=stream.feed if stream else None)
            if stream is not None:
                stream.close()
                if stream.showed_thought:  # end the streamed thought's last line
                    err_console().print()
            failed += _report(result, progress, show_thoughts and not stream_live)
            _write(result, as_json=as_json, separator=paragraph and index > 0)
            if unit.needs_model:
                progress.advance()
    return failed


def _report(result: Translation, progress: LineProgress, show_thoughts: bool) -> int:
    """stderr side of one result; returns 1 if it failed."""
    line = result.unit.line
    if show_thoughts and result.thought:
        progress.thought(f"line {line} thought:", result.thought)
    for term in result.missed:
        progress.log(f"marco: line {line}: glossary term '{term.source}' -> '{term.rendering}' was not used")
    if result.error is not None:
        progress.log(f"marco: line {line}: {result.error}")
        return 1
    return 0


def _write(result: Translation, *, as_json: bool, separator: bool) -> None:
    if as_json:
        out = json.dumps(result.to_json(), ensure_ascii=False) + "\n"
    else:
        out = ("\n" if separator else "") + for_terminal(result.translation, sys.stdout) + "\n"
    sys.stdout.write(out)
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    app.command("translate")(translate)
