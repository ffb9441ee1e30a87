"""``-m FILE.gguf``: a file given by path gets the formats of the registry
entry it says it is (file name, then the names in its GGUF header), a
``<think>`` template makes it a thinking model, anything else has none."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from marco_cli.formats.reasoning import Reasoning
from marco_cli.models.file_identity import identify_file
from marco_cli.models.gguf_header import read_strings
from marco_cli.models.registry import parse_registry, resolve
from marco_cli.reasoner import choose_model

REGISTRY = """
default = "marco-o1"
[models.marco-o1]
aliases = ["marco"]
repo = "bartowski/Marco-o1-GGUF"
default_quant = "Q4_K_M"
reasoning = "marco"
stop = ["<|im_end|>"]
system_prompt = "You are Marco-o1."
[models.marco-o1.quants.Q4_K_M]
file = "Marco-o1-Q4_K_M.gguf"
[models.served]
base_url = "http://127.0.0.1:9"
model = "served-model"
reasoning = "think"
"""


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def write_gguf(path: Path, strings: dict[str, str], *, vocab: int = 1000) -> Path:
    """A GGUF v3 header as llama.cpp's converter lays it out: scalars, a
    string array (the vocabulary) and a float array before the strings that
    matter, so the reader has to skip every kind of value to reach them."""
    pairs = [
        _string("general.architecture") + struct.pack("<I", 8) + _string("qwen2"),
        _string("qwen2.block_count") + struct.pack("<I", 4) + struct.pack("<I", 28),
        _string("tokenizer.ggml.tokens")
        + struct.pack("<I", 9)
        + struct.pack("<IQ", 8, vocab)
        + b"".join(_string(f"tok{i}") for i in range(vocab)),
        _string("tokenizer.ggml.scores") + struct.pack("<I", 9) + struct.pack("<IQ", 6, vocab) + b"\0" * 4 * vocab,
        _string("general.rope_scale") + struct.pack("<I", 12) + struct.pack("<d", 1.0),
    ]
    pairs += [_string(k) + struct.pack("<I", 8) + _string(v) for k, v in strings.items()]
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(pairs)) + b"".join(pairs) + b"\0" * 64)
    return path


def registry():
    return parse_registry(REGISTRY, Path("models.toml"))


def test_the_header_reader_skips_every_kind_of_value_to_the_strings_asked(tmp_path):
    path = write_gguf(tmp_path / "m.gguf", {"general.name": "Marco o1", "tokenizer.chat_template": "{{ x }}"})
    assert read_strings(path, {"general.name", "tokenizer.chat_template", "general.basename"}) == {
        "general.name": "Marco o1",
        "tokenizer.chat_template": "{{ x }}",
    }
    assert read_strings(path, {"general.architecture"}) == {"general.architecture": "qwen2"}


@pytest.mark.parametrize("cut", [3, 20, 200, 5000])
def test_a_damaged_or_foreign_file_gives_what_was_read_never_an_error(tmp_path, cut):
    whole = write_gguf(tmp_path / "m.gguf", {"general.name": "Marco o1"}).read_bytes()
    short = tmp_path / "short.gguf"
    short.write_bytes(whole[:cut])
    assert read_strings(short, {"general.name"}) == {}
    (tmp_path / "text.gguf").write_text("not a model at all")
    assert read_strings(tmp_path / "text.gguf", {"general.name"}) == {}
    assert read_strings(tmp_path / "missing.gguf", {"general.name"}) == {}
    huge = tmp_path / "huge.gguf"  # a length field that would ask for 2**60 bytes
    huge.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1 << 60))
    assert read_strings(huge, {"general.name"}) == {}


def test_a_file_named_as_a_registry_quant_runs_in_that_entrys_formats(tmp_path):
    path = tmp_path / "Marco-o1-Q4_K_M.gguf"
    path.write_bytes(b"not read: the name is enough")
    model = resolve(registry(), str(path))
    assert model.by_path and model.entry.reasoning is Reasoning.NONE
    found = identify_file(registry(), model)
    assert found.model.path == path and found.model.label == "Marco-o1-Q4_K_M.gguf"
    assert found.model.entry.reasoning is Reasoning.MARCO
    assert found.model.entry.system_prompt == "You are Marco-o1." and found.model.entry.stop == ("<|im_end|>",)
    assert not found.model.entry.downloadable and found.model.remote is None
    assert found.notice == (
        "Marco-o1-Q4_K_M.gguf is marco-o1 in the registry: it runs in marco-o1's formats ('marco' reasoning)"
    )


@pytest.mark.parametrize(
    "names",
    [
        {"general.name": "Marco o1"},  # what the converter writes from "Marco-o1"
        {"general.name": "Something else", "general.basename": "Marco-o1"},
        {"general.source.huggingface.repository": "AIDC-AI/Marco-o1"},
    ],
)
def test_a_renamed_file_is_known_by_the_names_in_its_header(tmp_path, names):
    path = write_gguf(tmp_path / "my-download.Q4_K_M.gguf", names)
    found = identify_file(registry(), resolve(registry(), str(path)))
    assert found.model.entry.reasoning is Reasoning.MARCO and found.model.path == path
    assert found.notice is not None and "which is marco-o1 in the registry" in found.notice


def test_a_match_with_a_remote_entry_takes_its_formats_not_its_server(tmp_path):
    path = write_gguf(tmp_path / "x.gguf", {"general.name": "served-model"})
    found = identify_file(registry(), resolve(registry(), str(path)))
    assert found.model.entry.reasoning is Reasoning.THINK
    assert found.model.remote is None and found.model.entry.remote is None and found.model.path == path


def test_no_match_a_think_template_or_nothing(tmp_path):
    think = write_gguf(tmp_path / "r1.gguf", {"general.name": "Qwen3 8B", "tokenizer.chat_template": "<think>\\n"})
    found = identify_file(registry(), resolve(registry(), str(think)))
    assert found.model.entry.reasoning is Reasoning.THINK
    assert (
        found.notice
        == "r1.gguf is not in the registry; its chat template writes <think>, so it runs as a thinking model"
    )
    plain = write_gguf(tmp_path / "plain.gguf", {"general.name": "Llama 3.2 1B Instruct"})
    model = resolve(registry(), str(plain))
    assert identify_file(registry(), model) == type(found)(model, None)


def test_choose_model_identifies_paths_and_leaves_names_alone(tmp_path):
    path = write_gguf(tmp_path / "dl.gguf", {"general.basename": "marco"})  # an alias
    choice = choose_model(registry(), str(path))
    assert choice.model.entry.reasoning is Reasoning.MARCO and "dl.gguf names itself 'marco'" in (choice.notice or "")
    missing = tmp_path / "missing.gguf"
    with pytest.raises(Exception, match="model file not found"):
        choose_model(registry(), str(missing))


@pytest.mark.model
def test_marco_ask_on_a_renamed_copy_of_the_embedded_model_says_what_it_runs(tmp_path, smol_gguf):
    """End to end: the real llama.cpp, a real file whose name says nothing."""
    copy = tmp_path / "downloaded.gguf"
    shutil.copyfile(smol_gguf, copy)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "marco_cli",
            "ask",
            "-m",
            str(copy),
            "--mode",
            "cot",
            "--max-tokens",
            "4",
            "--threads",
            "1",
            "Hi",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    assert (
        "marco: downloaded.gguf names itself 'smollm2', which is smollm2-135m in the registry: "
        "it runs in smollm2-135m's formats" in proc.stderr
    )
