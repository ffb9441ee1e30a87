"""One request to a remote server while it runs, and what is kept of it.

A ``Run`` collects the server's tokens and feeds the ``Stop`` matcher
(``stops.ContinuationText``, the same one the local engine uses). When it
ends, either its token ids and bytes are known exactly (llama-server; vLLM
with a clean cut) and the continuation is those tokens, or only the text is
(llama-cpp-python; a stop inside an event of several vLLM tokens) and the
kept text is tokenised by the server, with the confidences spread over those
tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .base import Request, StopReason
from .remote_wire import Chunk, TokenEntry, confidence, spread
from .stops import ContinuationText, StopMatch

Kept = tuple[tuple[int, ...], str, list[float]]  # tokens, text, confidences of the sampled ones


@dataclass(frozen=True)
class State:
    """What a handle stands for: its token path from the root prompt on."""

    tokens: tuple[int, ...]
    text: str | None  # TEXT dialect: the exact text the server is sent


class Run:
    """One request while it runs: the tokens so far and the stop matcher."""

    def __init__(
        self,
        index: int,
        request: Request,
        state: State,
        forced: tuple[int, ...],
        forced_text: str,
        forced_pieces: list[bytes],
        budget: int,
    ) -> None:
        self.index = index
        self.request = request
        self.state = state
        self.forced = forced
        self.forced_text = forced_text
        self.budget = budget  # tokens it may sample (max_tokens, cut to the context left)
        self.text = ContinuationText(request.stops, loop_guard=request.loop_guard)
        self.ids: list[int | None] = list(forced)
        self.pieces: list[bytes] = []  # TOKENS: one per token (forced first)
        self.exact_pieces = True  # every piece is that token's own bytes
        self.clean = {0}  # token counts at which the pieces so far spell the text exactly
        self.shared_event = False  # the last token shares its event's text with others
        self.entries: list[TokenEntry] = []
        for piece in forced_pieces:
            self.pieces.append(piece)
            self.text.add(piece, forced=True)
        self.clean.add(len(forced))

    def add(self, entry: TokenEntry, piece: bytes, *, clean: bool = True) -> StopMatch | None:
        """``clean``: the text so far is exactly the pieces so far (False inside
        an event whose text covers several tokens)."""
        self.ids.append(entry.id)
        self.entries.append(entry)
        self.pieces.append(piece)
        if clean:
            self.clean.add(len(self.ids))
        return self.text.add(piece)

    def add_chunk(self, chunk: Chunk) -> StopMatch | None:
        self.entries.extend(chunk.entries or ())
        return self.text.add(chunk.text.encode("utf-8"))

    @property
    def n_sampled(self) -> int:
        return len(self.entries)

    def cap_reason(self) -> StopReason:
        return StopReason.LENGTH if self.n_sampled >= self.request.max_tokens else StopReason.CONTEXT


def kept_exact(run: Run, cut: int, known: dict[int, bytes]) -> Kept:
    """The first ``cut`` tokens, as the server sent them; learns their bytes."""
    tokens = tuple(int(t) for t in run.ids[:cut])  # type: ignore[arg-type]
    n_forced = min(len(run.forced), cut)
    if run.exact_pieces:
        for token, piece in zip(tokens, run.pieces):
            known.setdefault(token, piece)
    text = b"".join(run.pieces[:cut]).decode("utf-8", errors="replace")
    return tokens, text, [confidence(e) for e in run.entries[: cut - n_forced]]


def kept_retokenized(
    run: Run, match: StopMatch | None, tokenize: Callable[[str], list[int]], *, by_pieces: bool
) -> Kept:
    """Keep the text up to the stop (all of a kept stop, none of a dropped one),
    let the server tokenize it, and spread the confidences of the server's
    tokens that start inside it over those tokens."""
    full = run.text.text
    start = len(run.forced_text)
    end = len(full)
    if match is not None:
        end = match.start + (len(match.stop.text) if match.stop.keep else 0)
    sampled = full[start : max(start, end)]
    new = tokenize(sampled) if sampled else []
    if by_pieces:  # an event's text sits on its last token
        lengths = [len(p.decode("utf-8", errors="replace")) for p in run.pieces[len(run.forced) :]]
    else:  # token text as the server wrote it (may drop split characters)
        lengths = [len(e.text) or 1 for e in run.entries]
    offset, n_keep = 0, 0
    for length in lengths:
        if offset >= len(sampled):
            break
        offset += length
        n_keep += 1
    values = [confidence(e) for e in run.entries[:n_keep]]
    return run.forced + tuple(new), run.forced_text + sampled, spread(values, len(new))
