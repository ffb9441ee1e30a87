"""``run_search``: the anytime loop around the four MCTS phases."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence

from ..backends.base import Backend
from ..core.errors import BackendError
from ..core.settings import SearchSettings
from ..formats.reasoning import MARCO, ReasoningFormat
from .actions import Actions, reflection_tokens
from .batching import auto_leaves
from .events import IterationDone, NullObserver, Observer, SearchFinished
from .final import Answer, choose_answer
from .mcts import MCTS
from .node import Node, snapshot
from .result import PickChoice, SearchResult, SearchStats, StoppedBy, VoteSummary
from .vote import tally


def run_search(
    backend: Backend,
    prompt_tokens: Sequence[int],
    settings: SearchSettings,
    *,
    observer: Observer | None = None,
    should_stop: Callable[[], bool] | None = None,
    clock: Callable[[], float] = time.monotonic,
    reasoning: ReasoningFormat = MARCO,
) -> SearchResult:
    """Search for an answer to the prompt by MCTS and return the best one.

    Anytime: the wall-clock ``settings.budget``, ``should_stop()`` and Ctrl-C
    end the search between phases and still return the best answer so far;
    ``settings.early_stop`` ends it once the finished rollouts agree.
    On Ctrl-C the result says ``stopped_by=INTERRUPTED`` and the caller
    re-raises / exits 130. A backend that fails once the prompt is in (a
    remote server killed or unreachable) ends the search the same way:
    ``stopped_by=BACKEND_FAILED``, the best answer so far, the error in
    ``result.error``; nothing more is asked of the backend. Every KV handle
    the search took is released before returning. ``reasoning``, the model's
    format, decides where a thought and an answer end (step stops,
    reflection, the value span).
    """
    if not settings.leaves_per_iteration:
        settings = settings.with_(leaves_per_iteration=auto_leaves(backend.info))
    search = MCTS(backend, settings, observer or NullObserver(), should_stop, clock, reasoning)
    evaluated_before = backend.stats.evaluated_tokens
    stopped_by = StoppedBy.COMPLETED
    error: str | None = None
    try:
        try:
            search.actions = Actions(settings, reflection_tokens(backend), reasoning)
            search.root = search.add_node(None, backend.root(list(prompt_tokens)))
            search.announce(search.root)
            while search.simulations < settings.simulations:
                halt = search.halt_reason() or search.iterate()
                if halt is not None:
                    stopped_by = halt
                    break
                search.iterations += 1
                search.emit(
                    IterationDone(
                        iteration=search.iterations,
                        simulations=search.simulations,
                        nodes=len(search.nodes),
                        tokens=search.tokens_generated,
                        elapsed=search.elapsed(),
                        tree=snapshot(search.root),
                    )
                )
        except KeyboardInterrupt:
            stopped_by = StoppedBy.INTERRUPTED
        except BackendError as exc:
            if search.root is None:
                raise  # nothing searched yet: a plain error
            stopped_by, error = StoppedBy.BACKEND_FAILED, str(exc)
        searched = search.tokens_generated
        answer, picks = choose_answer(search, stopped_by)
        if answer.interrupted:
            stopped_by = StoppedBy.INTERRUPTED
        result = _result(
            search, answer, picks, stopped_by, backend.stats.evaluated_tokens - evaluated_before,
            search.tokens_generated - searched, error,
        )
    except BaseException:
        # The backend may be what failed: free what we can, keep its error.
        with contextlib.suppress(Exception):
            _release_all(search)
        raise
    _release_all(search)
    search.emit(SearchFinished(result))
    return result


def _release_all(search: MCTS) -> None:
    for node in search.nodes:
        handle, node.handle = node.handle, None
        search.release(handle)


def _result(
    search: MCTS, answer: Answer, picks: tuple[PickChoice, ...], stopped_by: StoppedBy, evaluated: int, finished: int,
    error: str | None = None,
) -> SearchResult:
    root = search.root
    if root is None:  # never got past the prompt: an empty tree
        root = Node(id=0, parent=None, depth=0)
    view = snapshot(root)
    views = {v.id: v for v in view.walk()}
    path = tuple(views[n.id] for n in answer.leaf.path()) if answer.leaf is not None else ()
    stats = SearchStats(
        simulations=search.simulations,
        rollouts=len(search.rollouts),
        iterations=search.iterations,
        nodes=len(search.nodes),
        max_depth=max((n.depth for n in search.nodes), default=0),
        tokens_generated=search.tokens_generated,
        tokens_evaluated=evaluated,
        seconds=search.elapsed(),
        finish_tokens=finished,
    )
    votes = tally(search.rollouts)
    vote = VoteSummary(
        answer_key=votes.leader.key if votes.leader else None,
        share=votes.share,
        voters=votes.voters,
        answers=len(votes.groups),
    )
    return SearchResult(
        answer_text=search.backend.detokenize(answer.tokens) if answer.tokens else "",
        tokens=answer.tokens,
        confidences=answer.confidences,
        path=path,
        root=view,
        stats=stats,
        stopped_by=stopped_by,
        value=answer.value,
        complete=answer.complete,
        rollouts=tuple(search.rollouts),
        stop=answer.stop,
        picks=picks,
        vote=vote,
        reasoning=search.reasoning,
        error=error,
    )
