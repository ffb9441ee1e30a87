"""A few string fields from a GGUF file's header, read without llama.cpp.

A GGUF file starts with its metadata: a count of key/value pairs, each a
length-prefixed key, a type code and a value. Telling what a file given by
path is (which registry entry, which reasoning format) needs only a few
strings of it, before the model is loaded and without loading it. Arrays
(the vocabulary: ~150k strings for Qwen2) are skipped by seeking, so a
Qwen2-sized header reads in about 0.1 s.

Anything that is not a well-formed GGUF header gives what was read so far:
loading the file later says what is wrong with it, in one line.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

MAGIC = b"GGUF"
_STRING = 8
_ARRAY = 9
_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # type code: bytes
_MAX_STRING = 1 << 24  # a longer "string" means a damaged header (chat templates are ~10 KiB)


class _Malformed(Exception):
    pass


def _u32(f: BinaryIO) -> int:
    raw = f.read(4)
    if len(raw) != 4:
        raise _Malformed
    return int(struct.unpack("<I", raw)[0])


def _u64(f: BinaryIO) -> int:
    raw = f.read(8)
    if len(raw) != 8:
        raise _Malformed
    return int(struct.unpack("<Q", raw)[0])


def _string(f: BinaryIO, keep: bool) -> str | None:
    n = _u64(f)
    if n > _MAX_STRING:
        raise _Malformed
    if not keep:
        f.seek(n, 1)
        return None
    raw = f.read(n)
    if len(raw) != n:
        raise _Malformed
    return raw.decode("utf-8", errors="replace")


def _skip(f: BinaryIO, kind: int) -> None:
    if kind == _STRING:
        _string(f, keep=False)
    elif kind == _ARRAY:
        item, count = _u32(f), _u64(f)
        if item == _STRING:
            for _ in range(count):
                _string(f, keep=False)
        elif item in _FIXED:
            f.seek(_FIXED[item] * count, 1)
        else:  # arrays of arrays: no writer makes them for metadata
            raise _Malformed
    elif kind in _FIXED:
        f.seek(_FIXED[kind], 1)
    else:
        raise _Malformed


def read_strings(path: Path, keys: set[str]) -> dict[str, str]:
    """The string values of ``keys`` found in ``path``'s GGUF metadata."""
    found: dict[str, str] = {}
    try:
        with open(path, "rb", buffering=1 << 16) as f:
            if f.read(4) != MAGIC:
                return found
            version = _u32(f)
            if version < 2:  # GGUF v1 used 32-bit counts; llama.cpp no longer loads it
                return found
            _u64(f)  # tensor count
            pairs = _u64(f)
            for _ in range(pairs):
                key = _string(f, keep=True)
                kind = _u32(f)
                if kind == _STRING and key in keys:
                    found[key] = _string(f, keep=True) or ""
                    if len(found) == len(keys):
                        break
                else:
                    _skip(f, kind)
    except (OSError, _Malformed, struct.error):
        pass
    return found
