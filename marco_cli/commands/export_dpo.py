"""``marco export-dpo``: DPO preference pairs from saved search trees."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..core.atomic import write_text_atomic
from ..core.errors import OutputError
from ..evaluation.datasets import load_dataset
from ..ui.console import notice
from . import _options as o

if TYPE_CHECKING:
    from ..evaluation.dpo import Pair


def export_dpo(
    trees: Annotated[
        list[Path],
        typer.Argument(metavar="TREE...", help="Search trees saved with --save-tree (JSON).", show_default=False),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write the pairs here (JSON Lines) [default: stdout].",
            show_default=False,
        ),
    ] = None,
    dataset: Annotated[
        Path | None,
        typer.Option(
            "--dataset",
            metavar="FILE",
            help="A benchmark file (TSV/JSONL) whose answers grade the paths: chosen = correct, rejected = wrong.",
            show_default=False,
        ),
    ] = None,
    max_pairs: o.MaxPairsOpt = None,
) -> None:
    """Turn search trees into chosen/rejected pairs that share their deepest common ancestor."""
    from ..evaluation.dpo import make_pairs, rank_pairs  # the search (and numpy) load here, not for --help
    from ..evaluation.dpo_io import load_record
    from ..ui.summary import counted

    o.check_max_pairs(max_pairs)
    references = {p.question: p.reference for p in load_dataset(dataset)} if dataset else {}
    by_question: dict[str, list[Pair]] = {}
    for path in trees:
        record = load_record(path)
        if record.question.strip() in references:  # the loaders strip questions too
            record = replace(record, reference=references[record.question.strip()])
        by_question.setdefault(record.question_id, []).extend(make_pairs(record))
    lines = [
        json.dumps(pair.to_json(), ensure_ascii=False) + "\n"
        for pairs in by_question.values()
        for pair in rank_pairs(pairs, max_pairs)
    ]
    _write(lines, output)
    notice(f"{counted(len(lines), 'pair')} from {counted(len(trees), 'tree')}")


def _write(lines: list[str], output: Path | None) -> None:
    if output is None:
        sys.stdout.writelines(lines)
        sys.stdout.flush()
        return
    try:
        write_text_atomic(output, "".join(lines))  # a full disk keeps the old file whole
    except OSError as exc:
        raise OutputError(f"cannot write {output}: {exc.strerror or exc}") from None


def register(app: typer.Typer) -> None:
    app.command("export-dpo")(export_dpo)
