"""Command-line options: the settings spec's flags, and the few output flags
that mean the same in every command that has them.

``@settings_flags(...)`` gives a command every flag of the spec (model,
generation, search, runtime) and hands them to it as one ``Flags`` value, so
no command lists them and none can miss one. Flags are read as text and
parsed by the spec, so a bad value reads the same as after chat's ``/set``.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from ..core.errors import UsageError
from ..core.settings import (
    MODE,
    SPEC,
    GenerationSettings,
    Mode,
    ModelSettings,
    RuntimeSettings,
    SearchSettings,
    default_temperature,
)
from ..core.spec import Setting, Surface
from ..models.registry import load_registry
from ..reasoner import ModelChoice, choose_model
from ..ui.console import notice

_VIEW = "Output"
_CONTEXT = "_marco_ctx"

# -- output flags shared by several commands (each spelled and meant once) ---
ShowThoughtsOpt = Annotated[
    bool,
    typer.Option(
        "--show-thoughts",
        help="Write the thought to stderr as well, also when stderr is not a terminal (stdout keeps only answers).",
        rich_help_panel=_VIEW,
    ),
]
NoLiveOpt = Annotated[
    bool,
    typer.Option(
        "--no-live",
        help="Don't draw the search tree live on stderr (it is drawn only on a terminal anyway).",
        rich_help_panel=_VIEW,
    ),
]
QuietOpt = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="Leave no tree or summary on stderr after the search.", rich_help_panel=_VIEW),
]
ConfidenceOpt = Annotated[
    bool,
    typer.Option(
        "--confidence",
        help="Print the answer with each token coloured by its confidence (red unsure, green sure).",
        rich_help_panel=_VIEW,
    ),
]
SaveTreeOpt = Annotated[
    Path | None,
    typer.Option(
        "--save-tree",
        help="Write the whole search to this JSON file (for `marco replay`; schema in docs/tree-schema.md).",
        show_default=False,
        metavar="FILE",
        rich_help_panel=_VIEW,
    ),
]
ModelsFileOpt = Annotated[
    str | None,
    typer.Option("--models", envvar="MARCO_MODELS", help=SPEC["models"].help, show_default=False, metavar="FILE"),
]


JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the results as JSON on stdout instead of text.", rich_help_panel=_VIEW)
]
# DPO pairs: made by `eval --dpo-out` and by `export-dpo`, capped alike
MaxPairsOpt = Annotated[
    int | None,
    typer.Option(
        "--max-pairs-per-question",
        metavar="N",
        help="Keep at most N pairs per question (largest value gaps first).",
        show_default=False,
    ),
]
RESUME_SELF = "\0"  # `--resume` with no FILE: continue the file named by --save / --out
BARE_VALUES = {"--resume": RESUME_SELF}
"""Options whose value may be left out, and what they then get (click has no
such options; ``MarcoCommand.parse_args`` fills the value in)."""


# `--resume [FILE]`: carry on from FILE and keep adding to it, in chat and eval alike
ResumeOpt = Annotated[
    str | None,
    typer.Option(
        "--resume",
        help="Carry on from FILE and keep adding to it; without FILE, from the file of --save (chat) or --out (eval).",
        metavar="[FILE]",
        show_default=False,
    ),
]


@dataclass(frozen=True)
class Flags:
    """The spec's flags as a command received them: the parsed values of
    those given, by setting name, and which were given on the command line
    (not through an environment variable)."""

    values: dict[str, Any]  # only the settings given (flag or environment variable)
    given: frozenset[str]
    mode_default: Mode | None = None

    def __getitem__(self, name: str) -> Any:
        return self.values[name] if name in self.values else SPEC[name].default

    @property
    def mode(self) -> Mode:
        return self.values.get("mode") or self.mode_default or Mode.MCTS

    @property
    def model_settings(self) -> ModelSettings:
        return SPEC.build(ModelSettings, self._set())

    def runtime(self) -> RuntimeSettings:
        """Runtime settings; a thread count above the CPUs here is capped, with a notice."""
        settings = SPEC.build(RuntimeSettings, self._set())
        capped = settings.threads_notice()
        if capped:
            notice(capped)
        return settings

    def generation(self, *, samples: int = 1) -> GenerationSettings:
        """CoT settings; the temperature, unless given, by ``default_temperature``."""
        return SPEC.build(GenerationSettings, self._set(Mode.COT, samples))

    def search(self) -> SearchSettings:
        return SPEC.build(SearchSettings, self._set(Mode.MCTS))

    def given_values(self, surface: Surface) -> dict[str, Any]:
        """Settings given on the command line that ``surface`` also knows
        (chat: they win over a resumed conversation's saved values)."""
        return {name: self.values[name] for name in self.given if surface in SPEC[name].surfaces}

    def _set(self, mode: Mode | None = None, samples: int = 1) -> dict[str, Any]:
        values = dict(self.values)  # a None here was given ("--budget off"), not left out
        if mode is not None and "temperature" not in values:
            values["temperature"] = default_temperature(mode, samples=samples)
        return values


def choose(flags: Flags) -> ModelChoice:
    """The model the flags name (``--model``, ``--models``, ``--backend``)."""
    m = flags.model_settings
    return choose_model(load_registry(m.models), m.model, backend=m.backend)


def settings_flags(
    *, mode: Mode | None = None, without: Iterable[str] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the spec's flags. ``mode`` is the command's ``--mode``
    default (None: the command has no ``--mode``); ``without`` names the
    settings that make no sense for it (its own options say why).

    The command takes ``flags: Flags`` instead of one parameter per flag."""
    skipped = set(without) | ({"mode"} if mode is None else set())
    chosen = [s for s in SPEC.on(Surface.CLI) if s.name not in skipped]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        own = [_evaluated(p, command) for p in inspect.signature(command).parameters.values() if p.name != "flags"]
        added = [_parameter(s, mode) for s in chosen]
        context = inspect.Parameter(_CONTEXT, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)

        @functools.wraps(command)
        def run(**kwargs: Any) -> Any:
            ctx = kwargs.pop(_CONTEXT)
            raw = {s.name: kwargs.pop(s.key) for s in chosen}
            return command(**kwargs, flags=_flags(ctx, chosen, raw, mode))

        run.__signature__ = inspect.Signature([*own, *added, context])  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in own}  # evaluated: typer resolves no strings
        run.mode_default = mode  # type: ignore[attr-defined]  # for the README's table
        return run

    return decorate


def _evaluated(param: inspect.Parameter, command: Callable[..., Any]) -> inspect.Parameter:
    """The parameter with its annotation evaluated (typer reads real types;
    ``flags``'s own annotation is never needed, so it is never evaluated)."""
    if isinstance(param.annotation, str):
        return param.replace(annotation=eval(param.annotation, command.__globals__))
    return param


def _parameter(s: Setting, mode: Mode | None) -> inspect.Parameter:
    decls = [s.flag] + ([s.short] if s.short else [])
    default_text = mode.value if s is MODE and mode is not None else s.default_shown
    panel = s.group.value
    help = f"{s.help} [default: {default_text}]"
    if s.envvar:
        help += f" [env: {s.envvar}]"
    if s.kind is bool:
        if not s.negatable:
            option = typer.Option(*decls, help=s.help, rich_help_panel=panel)
            annotation: Any = bool
        else:
            option = typer.Option(f"{s.flag}/--no-{s.name}", help=help, show_default=False, rich_help_panel=panel)
            annotation = bool | None
    else:
        option = typer.Option(*decls, help=help, metavar=s.shown_metavar, show_default=False, rich_help_panel=panel)
        annotation = str | None
    default = False if annotation is bool else None
    return inspect.Parameter(
        s.key, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[annotation, option]
    )


def _flags(ctx: typer.Context, chosen: list[Setting], raw: dict[str, Any], mode: Mode | None) -> Flags:
    values: dict[str, Any] = {}
    given = set()
    for s in chosen:
        text = raw[s.name]
        if s.kind is bool:
            if text is None or (not s.negatable and text is False):
                continue
            values[s.name] = s.check(text)
            given.add(s.name)
            continue
        if text is None:  # not on the command line: its environment variable, if any
            text = os.environ.get(s.envvar) or None if s.envvar else None
            if text is not None:
                values[s.name] = s.parse(text)
            continue
        values[s.name] = s.parse(text)
        if _on_command_line(ctx, s.key):
            given.add(s.name)
    return Flags(values, frozenset(given), mode)


def _on_command_line(ctx: typer.Context, key: str) -> bool:
    # by name: typer >= 0.29 has its own copy of click's ParameterSource
    source = ctx.get_parameter_source(key)
    return source is None or source.name == "COMMANDLINE"


def check_resume(resume: str | None, writer: str | None, *, writer_flag: str) -> str | None:
    """The file ``--resume`` continues: its FILE, else ``writer``'s."""
    if resume is None:
        return None
    if resume == RESUME_SELF:
        if writer is None:
            raise UsageError(f"--resume needs {writer_flag} (the file to continue) or a FILE of its own")
        return writer
    return resume


def check_max_pairs(max_pairs: int | None) -> None:
    if max_pairs is not None and max_pairs < 1:
        raise UsageError(f"--max-pairs-per-question must be at least 1, got {max_pairs}")
