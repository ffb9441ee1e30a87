"""Benchmarks and preference data: ``marco eval`` (CoT against MCTS on
MGSM/GSM8K-style files) and DPO pairs from search trees (``marco export-dpo``).

No terminal I/O here; the CLI and tests drive these use cases.
"""

from .answers import extract_answer, is_correct, reference_answer
from .datasets import DatasetError, Problem, load_dataset
from .dpo import CompletePath, Pair, TreeRecord, make_pairs, rank_pairs, record_from_search
from .evaluate import EVAL_MODES, EvalInterrupted, EvalPlan, EvalReport, parse_modes, run_eval
from .stats import ModeSummary, summarize, wilson_interval

__all__ = [
    "EVAL_MODES",
    "CompletePath",
    "DatasetError",
    "EvalInterrupted",
    "EvalPlan",
    "EvalReport",
    "ModeSummary",
    "Pair",
    "Problem",
    "TreeRecord",
    "extract_answer",
    "is_correct",
    "load_dataset",
    "make_pairs",
    "parse_modes",
    "rank_pairs",
    "record_from_search",
    "reference_answer",
    "run_eval",
    "summarize",
    "wilson_interval",
]
