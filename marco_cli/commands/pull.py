"""``marco pull`` and ``marco rm``: get a hub model's GGUF, or delete it.

stdout gets only the pulled file's path (``marco ask -m "$(marco pull x)"``
works); progress and notices go to stderr.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..models import download
from ..models.download import Phase, PullProgress
from ..core.errors import ModelNotFoundError, UsageError
from ..models.registry import ResolvedModel, load_registry, resolve
from ..ui.console import notice
from ..ui.pull_progress import human_bytes, pull_display
from . import _options as o

ModelArg = Annotated[str, typer.Argument(metavar="NAME[:QUANT]", help="Registry model, e.g. marco-o1 or marco-o1:q8_0.", show_default=False)]


def pull(
    name: ModelArg,
    models_file: o.ModelsFileOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Download again even if the file is there and verified.")] = False,
) -> None:
    """Download a model's GGUF from the Hugging Face Hub (resumable, sha256-verified)."""
    model = resolve(load_registry(models_file), name)
    from ..models import hub  # lazily: huggingface_hub takes a while to import

    hub.quiet_logs()
    display = pull_display(model.label)
    outcome: list[Phase] = []

    def on_progress(event: PullProgress) -> None:
        if event.phase in (Phase.PRESENT, Phase.DONE):
            outcome.append(event.phase)
        display(event)

    try:
        path = download.pull(model, progress=on_progress, force=force)
    except KeyboardInterrupt:
        display.close()
        notice(f"download stopped; `marco pull {name}` resumes it")
        raise
    finally:
        display.close()
    size = human_bytes(path.stat().st_size)
    if outcome and outcome[-1] is Phase.PRESENT:
        notice(f"{model.label} is already downloaded and verified ({size}): {path}")
    else:
        notice(f"pulled {model.label} ({size}, verified) to {path}")
    sys.stdout.write(f"{path}\n")
    sys.stdout.flush()


def rm(
    name: ModelArg,
    models_file: o.ModelsFileOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a downloaded model file (and any partial download of it)."""
    model = resolve(load_registry(models_file), name)
    victims = download.files_to_remove(model)
    if not victims:
        _remove(model)  # raises the "not downloaded" error
    if not yes and not _confirm(model, sum(p.stat().st_size for p in victims if p.is_file())):
        notice(f"kept {model.label}")
        return
    _remove(model)
    notice(f"removed {model.label} ({model.path})")


def _remove(model: ResolvedModel) -> None:
    """Every refusal of ``rm`` is a usage error (exit 2): a model it cannot
    remove (shipped in a package, a server) or one with nothing on disk.
    Exit 1 stays for a removal that fails."""
    try:
        download.remove(model)
    except ModelNotFoundError as exc:
        raise UsageError(exc.message, hint=exc.hint) from None


def _confirm(model: ResolvedModel, size: int) -> bool:
    """Ask on stderr, read the answer from stdin (so `yes | marco rm x` works).
    Not typer.confirm: it echoes part of its prompt to stdout."""
    sys.stderr.write(f"marco: remove {model.label} ({human_bytes(size)}) at {model.path.parent}? [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline() if sys.stdin is not None else ""
    if not answer:  # stdin closed before an answer: do not guess
        sys.stderr.write("\n")
        raise UsageError("no answer to the confirmation question", hint="pass --yes to remove without asking")
    return answer.strip().lower() in ("y", "yes")


def register(app: typer.Typer) -> None:
    app.command("pull")(pull)
    app.command("rm")(rm)
