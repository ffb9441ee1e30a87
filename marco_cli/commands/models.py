"""``marco models``: what the registry knows, what is on disk, and whether this
llama.cpp build can use a GPU."""

from __future__ import annotations

import json
import sys

import typer
from rich.table import Table

from ..models.files import downloaded_files
from ..models.registry import Registry, ResolvedModel, load_registry, resolve_entry
from ..ui.console import is_tty, out_console
from . import _options as o


def _rows(registry: Registry) -> list[tuple[ResolvedModel, bool]]:
    rows = []
    for entry in registry.models.values():
        quants = list(entry.quants) if entry.repo else [entry.quant]
        for quant in quants:
            model = resolve_entry(entry, quant)
            is_default = entry.name == registry.default and (not entry.repo or quant == entry.default_quant)
            rows.append((model, is_default))
    return rows


def _size(model: ResolvedModel) -> str:
    if model.remote is not None:
        return "-"
    if model.on_disk:
        return f"{model.path.stat().st_size / 1e9:.2f} GB"
    return (model.quant_file.size if model.quant_file else model.entry.size) or "?"


def _state(model: ResolvedModel, states: dict[tuple[str, str], str]) -> str:
    """yes / no; for hub files: verified, unverified (not stamped by a pull) or partial."""
    if model.remote is not None:
        return "remote"
    return states.get((model.name, model.quant or ""), "yes" if model.on_disk else "no")


def _where(model: ResolvedModel) -> str:
    return model.remote.base_url if model.remote is not None else str(model.path)


def gpu_line() -> str:
    try:
        from ..backends.llama import gpu_offload_supported

        ok = gpu_offload_supported()
    except Exception as exc:  # a broken llama.cpp install must not hide the table
        return f"llama.cpp: not usable ({type(exc).__name__}: {exc})"
    if ok:
        return "GPU offload: available in this llama.cpp build (all layers by default)"
    return "GPU offload: not available in this llama.cpp build (CPU only; see README for CUDA/Metal)"


def models(
    models_file: o.ModelsFileOpt = None,
    as_json: o.JsonOpt = False,
) -> None:
    """List known models: quantizations, sizes, and which are on disk.

    With --json, one object: the registry file and a list of models."""
    registry = load_registry(models_file)
    rows = _rows(registry)
    states: dict[tuple[str, str], str] = {}
    for f in downloaded_files(registry):  # a complete file outranks a leftover partial
        if states.get((f.name, f.quant)) in (None, "partial"):
            states[(f.name, f.quant)] = f.state
    if as_json:
        data = [
            {
                "name": m.name, "aliases": list(m.entry.aliases), "quant": m.quant, "size": _size(m),
                "on_disk": m.on_disk, "state": _state(m, states), "path": _where(m), "default": d,
                "reasoning": m.entry.reasoning.value,
            }
            for m, d in rows
        ]
        sys.stdout.write(json.dumps({"registry": str(registry.source), "models": data}, indent=2) + "\n")
        return
    table = Table(title=None if not is_tty(sys.stdout) else f"models ({registry.source})", box=None, pad_edge=False)
    for column in ("name", "aliases", "quant", "size", "on disk", "path"):
        table.add_column(column, overflow="fold")
    for model, is_default in rows:
        name = model.name + (" *" if is_default else "")
        table.add_row(
            name, ", ".join(model.entry.aliases), model.quant or "", _size(model),
            _state(model, states), _where(model),
        )
    console = out_console()
    if not is_tty(sys.stdout):
        console.width = 240  # no wrapping in pipes
    console.print(table)
    console.print("* default model")
    console.print(gpu_line())


def register(app: typer.Typer) -> None:
    app.command("models")(models)
