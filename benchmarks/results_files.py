"""``marco eval`` results files read back by the benchmark scripts.

A run split over processes leaves one file per slice, and a run still going
leaves a last line half written: the rows come through ``marco eval``'s own
reader (``evaluation/results.py``), which skips a torn last line and names
file and line of anything else that is not a result.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from marco_cli.evaluation.results import ResultsError, read_rows

__all__ = ["ResultsError", "last_per_question", "read_all"]


def read_all(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Every row of every file, in file order."""
    return [row for path in paths for _, row in read_rows(path)[0]]


def last_per_question(rows: Sequence[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    """``mode``'s rows, one per question: a question found twice (a slice
    run again) counts once, from the row read last."""
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.get("mode") == mode:
            found[row["question_id"]] = row
    return list(found.values())
