"""``marco ask``: one question, one answer (stdout), reasoning on stderr."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from ..core.errors import UsageError
from ..core.settings import Mode
from ..reasoner import LOOP_NOTICE, Answer, Interrupted, Reasoner, SearchFailed, no_format_notice
from ..ui.console import err_console, is_tty, notice, out_console
from ..ui.heatmap import confidence_json, confidence_view
from ..ui.safe_text import for_terminal
from ..ui.stream import AnswerStream, print_thought
from . import _options as o
from ._io import read_input

if TYPE_CHECKING:
    from ._display import SearchDisplay


@o.settings_flags(mode=Mode.MCTS)
def ask(
    question: Annotated[
        str | None,
        typer.Argument(metavar="QUESTION", help="The question; '-' or a pipe reads stdin.", show_default=False),
    ] = None,
    show_thoughts: o.ShowThoughtsOpt = False,
    as_json: o.JsonOpt = False,
    no_live: o.NoLiveOpt = False,
    quiet: o.QuietOpt = False,
    confidence: o.ConfidenceOpt = False,
    save_tree: o.SaveTreeOpt = None,
    *,
    flags: o.Flags,
) -> None:
    """Answer a question by reasoning: a chain of thought, or a tree search.

    The answer goes to stdout, everything else to stderr; with --json, one
    object: the answer, the thought, token counts and the search summary."""
    from ._display import SearchDisplay  # the search (and numpy) load for a question, not for --help

    mode = flags.mode
    runtime, generation, search = flags.runtime(), flags.generation(), flags.search()
    if save_tree is not None and mode is not Mode.MCTS:
        raise UsageError(
            f"--save-tree needs --mode mcts (a {'vote' if mode is Mode.VOTE else 'chain of thought'} has no tree)"
        )
    text = read_input(question)
    choice = o.choose(flags)
    if choice.notice:
        notice(choice.notice)
    reasoner = Reasoner(choice.model, runtime)
    if show_thoughts and not reasoner.reasoning.has_thought:
        notice(no_format_notice(choice.model))
    display = SearchDisplay(
        mode=mode, settings=search, question=text, live=not no_live, final=not quiet, save_to=save_tree
    )
    out = _Output(as_json, show_thoughts, confidence)
    stream = _stream(out, reasoner) if mode is Mode.COT else None
    try:
        with display.observe() as observer:
            answer = reasoner.ask(
                text,
                mode=mode,
                generation=generation,
                search=search,
                on_text=stream.feed if stream else None,
                observer=observer,
            )
    except (Interrupted, SearchFailed) as exc:
        # Anytime: the best answer so far is printed and the tree saved, then
        # the error boundary reports why it stopped (130 or 1).
        _finish(exc.partial, stream, out, display, reasoner)
        raise
    else:
        _finish(answer, stream, out, display, reasoner)
    finally:
        reasoner.close()


@dataclass(frozen=True)
class _Output:
    as_json: bool
    show_thoughts: bool
    confidence: bool

    @property
    def answer_at_end(self) -> bool:
        """The answer is printed whole at the end, not streamed."""
        return self.as_json or self.confidence


def _stream(out: _Output, reasoner: Reasoner) -> AnswerStream | None:
    """Stream only when someone watches: answer to a stdout terminal, thought to a
    stderr terminal. Piped runs print once, at the end."""
    out_tty, err_tty = is_tty(sys.stdout), is_tty(sys.stderr)
    answer_live = out_tty and not out.answer_at_end
    if not (answer_live or err_tty):
        return None
    return AnswerStream(
        answer_to_stdout=answer_live, thought_console=err_console() if err_tty else None, reasoning=reasoner.reasoning
    )


def _finish(
    answer: Answer, stream: AnswerStream | None, out: _Output, display: SearchDisplay, reasoner: Reasoner
) -> None:
    """Save the tree, then print the answer; a failed save is reported after it."""
    save_error = display.save(answer)
    display.summarize(answer)
    if stream is not None:
        stream.close()
    if out.show_thoughts and answer.thought and (stream is None or stream.thought_console is None):
        print_thought(answer.thought)  # not streamed to a terminal: whole, before the answer
    if out.as_json:
        data = answer.to_json()
        if out.confidence:
            data["token_confidences"] = confidence_json(answer, reasoner.backend.detokenize)
        sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    elif out.confidence:
        out_console().print(confidence_view(answer, reasoner.backend.detokenize))
    elif stream is None or not stream.wrote_answer:
        sys.stdout.write(for_terminal(answer.answer.rstrip(), sys.stdout) + "\n")
    sys.stdout.flush()
    if answer.looped:
        notice(LOOP_NOTICE)
    if save_error is not None:
        if answer.interrupted or (answer.search is not None and answer.search.error):
            notice(f"error: {save_error}")  # the exit code stays 130
        else:
            raise save_error


def register(app: typer.Typer) -> None:
    app.command("ask")(ask)
