"""The ``marco chat`` loop: read a turn or a slash command, answer, repeat.

Two faces, one loop. In a terminal: a ``>>>`` prompt, the answer streamed
(thought dimmed on stderr), Ctrl-C stops the answer and comes back to the
prompt. From a pipe (``marco chat < script.txt``): no prompt, no colour, each
answer printed on stdout as one block and a blank line; everything else
(command feedback, notices, errors with their line number) goes to stderr, so
stdout holds answers only. Ctrl-C then ends the run (exit 130), as it would
any pipeline.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from ..chat.session import ChatSession
from ..core.errors import InputError, MarcoError
from ..core.settings import Mode
from ..reasoner import Answer, Interrupted, no_format_notice
from .console import err_console, is_tty, out_console
from .heatmap import confidence_view
from .line_input import CONTINUATION, PROMPT, ReadLine, read_input
from .live import LiveSearchView
from .safe_text import for_terminal
from .slash import QUIT, SlashContext, dispatch
from .stream import AnswerStream, print_thought
from .vote_view import VoteProgress, vote_summary

CANCELLED = "(cancelled)"
QUIT_HINT = "(use /exit or Ctrl-D to quit)"


class Repl:
    def __init__(
        self,
        session: ChatSession,
        read_line: ReadLine,
        *,
        interactive: bool,
        save_path: str | None = None,
        confidence: bool = False,
        show_thoughts: bool = False,
        live: bool = True,
    ) -> None:
        self.session = session
        self.confidence = confidence  # --confidence: answers as a token-confidence heatmap
        self.show_thoughts = show_thoughts  # --show-thoughts: thoughts on stderr also when not streamed
        self.live = live  # --no-live: no search tree drawn while a search runs
        self.read_line = read_line
        self.interactive = interactive
        self.context = SlashContext(save_path, loading=self._loading)
        self.failures = 0  # errors reported; a piped run exits 1 when there were any
        self._autosave_failed = False
        self._told_no_format: set[str] = set()  # models whose missing thought format was mentioned
        self._err = err_console()

    def run(self) -> int:
        """Until Ctrl-D, end of input or /exit; returns the exit status."""
        if self.interactive:
            self._say(
                f"marco chat with {self.session.model.label} ({self.session.settings.mode.value}). "
                "/help for commands, Ctrl-D or /exit to quit."
            )
        prompts = (PROMPT, CONTINUATION) if self.interactive else ("", "")
        while True:
            try:
                user = read_input(self.read_line, *prompts)
            except EOFError:
                if self.interactive:
                    sys.stdout.write("\n")  # the shell's prompt on a line of its own
                break
            except KeyboardInterrupt:
                if not self.interactive:
                    raise
                self._say(f"\n{QUIT_HINT}")
                continue
            except InputError as exc:
                self._error(exc)
                continue
            if user.unterminated:
                self._say('marco: the input ended inside a """ block; sending the block as it is')
            if not user.text.strip():
                continue
            if not user.block and user.text.startswith("/"):
                if self._command(user.text) is QUIT:
                    break
            else:
                self._turn(user.text)
        return 1 if self.failures and not self.interactive else 0

    # -- slash commands ----------------------------------------------------
    def _command(self, line: str) -> object:
        try:
            reply = dispatch(self.session, line, self.context)
        except MarcoError as exc:
            self._error(exc)
            return None
        except KeyboardInterrupt:  # e.g. while /model loads
            self._cancelled()
            return None
        if isinstance(reply, str):
            self._say(reply)
        elif reply is not None and reply is not QUIT:
            self._err.print(reply, crop=False)
        return reply

    # -- turns -------------------------------------------------------------
    def _turn(self, text: str) -> None:
        stream = self._stream()
        if stream is not None and stream.thought_console is not None:
            self._say_no_format()
        try:
            with self._search_status() as observer:
                answer = self.session.ask(
                    text,
                    on_text=stream.feed if stream else None,
                    observer=observer,
                    loading=self._loading,
                )
        except Interrupted as exc:
            self._show_answer(exc.partial.answer, stream, cancelled=True)
            self._cancelled(stream)
            return
        except KeyboardInterrupt:
            self._show_answer("", stream, cancelled=True)
            self._cancelled(stream)
            return
        except MarcoError as exc:
            if stream is not None:
                stream.close()
            self._error(exc)
            self._autosave()  # the question is kept in the conversation, with the error
            return
        if self.show_thoughts and answer.thought and (stream is None or stream.thought_console is None):
            print_thought(answer.thought)  # not streamed to a terminal: whole, before the answer
        vote = answer.extra.get("vote")
        if vote is not None and self.live and self.interactive and is_tty(sys.stderr):
            self._err.print(vote_summary(vote, answer.generated_tokens, answer.seconds), style="dim", markup=False)
        if self.confidence and is_tty(sys.stdout):
            self._show_heatmap(answer, stream)
        else:
            self._show_answer(answer.answer, stream)
        self._autosave()

    def _autosave(self) -> None:
        """With --save, write the file after every turn: a chat kept open all
        day must survive a closed terminal or a killed process."""
        path = self.context.save_path
        if not path:
            return
        try:
            self.session.save(path)
        except MarcoError as exc:
            if not self._autosave_failed:  # once is enough; the exit save reports again
                self._autosave_failed = True
                self._error(exc)

    def _stream(self) -> AnswerStream | None:
        """Stream CoT answers to a watching terminal; pipes get one block."""
        if not self.interactive or self.session.settings.mode is not Mode.COT:
            return None
        out_tty, err_tty = is_tty(sys.stdout), is_tty(sys.stderr)
        if not (out_tty or err_tty):
            return None
        answer_live = out_tty and not self.confidence  # the heatmap is drawn once the answer is whole
        return AnswerStream(
            answer_to_stdout=answer_live,
            thought_console=self._err if err_tty else None,
            reasoning=self.session.reasoner.reasoning,
        )

    def _say_no_format(self) -> None:
        """Once per model and session, where the thought would be shown: this
        model has none (its text shows dimmed, the answer is cut from it)."""
        model = self.session.model
        if self.session.reasoner.reasoning.has_thought or model.label in self._told_no_format:
            return
        self._told_no_format.add(model.label)
        self._say(f"marco: {no_format_notice(model)}")

    @contextlib.contextmanager
    def _search_status(self) -> Iterator[LiveSearchView | VoteProgress | None]:
        """The live search tree on a stderr terminal, cleared when the turn
        ends (``/tree`` draws it again); for a vote, its progress line."""
        settings = self.session.settings
        if not (self.live and self.interactive and settings.mode is not Mode.COT and is_tty(sys.stderr)):
            yield None
            return
        if settings.mode is Mode.VOTE:
            with VoteProgress(self._err, samples=settings.search.samples) as progress:
                yield progress
            return
        with LiveSearchView(self._err, simulations=settings.search.simulations, final=False) as view:
            yield view

    @contextlib.contextmanager
    def _loading(self, label: str) -> Iterator[None]:
        """Progress while the model loads (the first question, or after /model)."""
        if not (self.interactive and is_tty(sys.stderr)):
            yield
            return
        with self._err.status(f"loading {label}…"):
            yield

    def _show_answer(self, text: str, stream: AnswerStream | None, *, cancelled: bool = False) -> None:
        if stream is not None:
            stream.close()
            if stream.wrote_answer:
                if not cancelled:  # a blank line before the next prompt
                    sys.stdout.write("\n")
                    sys.stdout.flush()
                return
            if cancelled:  # what was streamed (a thought) stays on screen as it is
                return
        text = text.strip()
        if text or not cancelled:
            sys.stdout.write(for_terminal(text, sys.stdout) + "\n\n")
            sys.stdout.flush()

    def _show_heatmap(self, answer: Answer, stream: AnswerStream | None) -> None:
        if stream is not None:
            stream.close()
        out_console().print(confidence_view(answer, self.session.reasoner.backend.detokenize))
        sys.stdout.write("\n")
        sys.stdout.flush()

    def _cancelled(self, stream: AnswerStream | None = None) -> None:
        # a thought cut short leaves the cursor mid-line
        lead = "\n" if stream is not None and not stream.wrote_answer else ""
        self._say(f"{lead}{CANCELLED}")
        if not self.interactive:
            raise KeyboardInterrupt

    # -- messages (stderr) ---------------------------------------------------
    def _say(self, text: str) -> None:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def _error(self, exc: MarcoError) -> None:
        self.failures += 1
        if self.interactive:
            self._say(f"error: {exc}")
            return
        line = getattr(self.read_line, "line_number", None)
        where = f"line {line}: " if line else ""
        self._say(f"marco: error: {where}{exc}")
