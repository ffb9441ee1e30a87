"""Which registry entry a name found elsewhere means.

A server's model id (``--backend URL``) or a GGUF file given by path says
what it is in its own words: a file name, a Hugging Face repo id, the name
its converter wrote into the file. These are matched against the registry's
names, aliases, repos and GGUF file names, so that the entry's prompt and
reasoning formats come with it.
"""

from __future__ import annotations

import re

from .registry import ModelEntry, Registry


def name_keys(text: str) -> set[str]:
    """Ways one name can be written: as given, without directories and
    ``.gguf``, without a ``-GGUF`` repo suffix, with spaces and underscores
    as dashes ("Marco o1" is Marco-o1); lower case."""
    text = text.strip().lower()
    base = text.rsplit("/", 1)[-1]
    stem = base[:-5] if base.endswith(".gguf") else base
    keys = {text, base, stem}
    if stem.endswith("-gguf"):
        keys.add(stem[:-5])
    keys |= {re.sub(r"[\s_]+", "-", k) for k in keys}
    return {k for k in keys if k}


def match_entry(registry: Registry, *names: str) -> tuple[ModelEntry, str | None] | None:
    """The registry entry (and quant, when a file name says it) that any of
    ``names`` means; the first entry in registry order wins."""
    wanted: set[str] = set()
    for name in names:
        wanted |= name_keys(name)
    if not wanted:
        return None
    for entry in registry.models.values():
        for quant in entry.quants.values():
            if name_keys(quant.file) & wanted:
                return entry, quant.quant
        if entry.file and name_keys(entry.file) & wanted:
            return entry, entry.quant
        labels = {entry.name, *entry.aliases}
        if entry.repo:
            labels.add(entry.repo)
        if entry.model:
            labels.add(entry.model)
        if any(name_keys(n) & wanted for n in labels):
            return entry, None
    return None
