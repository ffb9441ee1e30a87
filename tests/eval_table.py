"""``marco eval``'s table read back as cells, for the tests of its shape."""

from __future__ import annotations

COLUMNS = ["mode", "n", "k", "acc %", "95% CI", "test@k %", "tokens/q", "s/q", "acc/1k tok", "Δ vs cot"]


def header(table: str) -> list[str]:
    line = next(line for line in table.splitlines() if "mode" in line)
    return [c.strip() for c in line.split("┃")[1:-1]]


def body(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("│")[1:-1]] for line in table.splitlines() if line.startswith("│")]
