"""``-m FILE.gguf``: which formats does a model given by path get?

A file does not say "I write <Thought>/<Output>", but it says what it is:
its file name (``Marco-o1-Q4_K_M.gguf`` is a registry quant's), and the
names its converter wrote into the GGUF (``general.name`` "Marco o1",
``general.basename``, the source repo). A match with a registry entry
brings that entry's reasoning format, stop strings and system prompt, so a
Marco-o1 file downloaded by hand runs as Marco-o1 and not as a model that
is asked for an "Answer:" line. No match: a chat template that writes
``<think>`` is a thinking model's; anything else has no thought format.
Either way the file is what runs, under its own name.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..formats.reasoning import Reasoning
from .gguf_header import read_strings
from .registry import ModelEntry, Registry, ResolvedModel
from .registry_match import match_entry

# What the converter (llama.cpp's convert_hf_to_gguf) writes about the model
# itself. Not general.base_model.*: a fine-tune's base is another model.
NAME_KEYS = ("general.name", "general.basename", "general.source.huggingface.repository")
TEMPLATE_KEY = "tokenizer.chat_template"


@dataclass(frozen=True)
class FileIdentity:
    model: ResolvedModel
    notice: str | None  # one line for stderr when the formats came from somewhere the user may not expect


def identify_file(registry: Registry, model: ResolvedModel) -> FileIdentity:
    """``model`` as ``resolve`` made it for a bare path, with its formats found."""
    path = model.path
    found = match_entry(registry, path.name)
    said = "is"
    header: dict[str, str] = {}
    if found is None:
        header = read_strings(path, {*NAME_KEYS, TEMPLATE_KEY})
        for name in (header[k] for k in NAME_KEYS if header.get(k)):
            found = match_entry(registry, name)
            if found is not None:
                said = f"names itself '{name}', which is"
                break
    if found is not None:
        entry, _ = found
        # The formats only: where the entry's own file lives (or the server
        # that runs it) has nothing to do with this file.
        formats = ModelEntry(
            name=path.stem,
            description=f"local file, with {entry.name}'s formats",
            path=str(path),
            reasoning=entry.reasoning,
            stop=entry.stop,
            system_prompt=entry.system_prompt,
            chat_template=entry.chat_template,
        )
        notice = f"{path.name} {said} {entry.name} in the registry: it runs in {entry.name}'s formats"
        if entry.reasoning is not Reasoning.NONE:
            notice += f" ('{entry.reasoning.value}' reasoning)"
        return FileIdentity(ResolvedModel(model.name, model.quant, path, formats), notice)
    template = header.get(TEMPLATE_KEY) or ""
    if "<think>" in template:
        entry = ModelEntry(
            name=path.stem, description="local file, a thinking model", path=str(path), reasoning=Reasoning.THINK
        )
        notice = f"{path.name} is not in the registry; its chat template writes <think>, so it runs as a thinking model"
        return FileIdentity(ResolvedModel(model.name, model.quant, path, entry), notice)
    return FileIdentity(model, None)  # no thought format: said where thoughts would show (no_format_notice)
