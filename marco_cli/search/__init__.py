"""MCTS over reasoning steps, scored by the model's own token confidence
(Marco-o1, arXiv 2411.14405). Pure Python + numpy; talks only to the
``marco_cli.backends.base.Backend`` protocol, never to llama_cpp, rich or typer.

    result = run_search(backend, prompt_tokens, settings, observer=..., should_stop=...)
"""

from ..backends.base import StopReason  # part of the events the search reports
from . import events
from .events import NullObserver, Observer, ObserverGroup
from .node import NodeView, snapshot, tree_to_dict
from .result import PickChoice, Rollout, SearchResult, SearchStats, StoppedBy, VoteSummary
from .run import run_search

__all__ = [
    "NodeView",
    "NullObserver",
    "Observer",
    "ObserverGroup",
    "PickChoice",
    "Rollout",
    "SearchResult",
    "SearchStats",
    "StopReason",
    "StoppedBy",
    "VoteSummary",
    "events",
    "run_search",
    "snapshot",
    "tree_to_dict",
]
