"""Remote models in models.toml (base_url/model/api_key_env), --backend URL,
and how the rest of marco sees a model that lives on a server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from marco_cli.cli import app
from marco_cli.core.errors import ConfigError, UsageError
from marco_cli.reasoner import choose_model
from marco_cli.models.registry import RemoteTarget, parse_registry, resolve, with_backend

REMOTE = """
default = "gpu"

[models.gpu]
aliases = ["big"]
base_url = "http://gpu-box:8000/v1/"
model = "AIDC-AI/Marco-o1"
api_key_env = "GPU_KEY"
n_ctx = 32768
concurrency = 8
timeout = 300
thought_format = true

[models.local]
path = "/nowhere/x.gguf"
"""


def test_a_remote_entry_resolves_to_its_server():
    reg = parse_registry(REMOTE, Path("m.toml"))
    model = resolve(reg, "big")
    assert model.remote == RemoteTarget("http://gpu-box:8000", "AIDC-AI/Marco-o1", "GPU_KEY", 32768, 8, 300.0)
    assert model.available and not model.on_disk and model.entry.thought_format
    assert choose_model(reg, None).model.remote is not None  # no download, no fallback notice
    with pytest.raises(UsageError, match="runs on a server .* no quant 'q4'"):
        resolve(reg, "gpu:q4")


def test_minimal_remote_entry_takes_defaults():
    reg = parse_registry('[models.r]\nbase_url = "https://api.example.com"', Path("m.toml"))
    target = resolve(reg, "r").remote
    assert target == RemoteTarget("https://api.example.com")
    assert (target.concurrency, target.timeout, target.model, target.cache_prompt) == (4, 120.0, None, False)
    reg = parse_registry('[models.r]\nbase_url = "http://x"\ncache_prompt = true', Path("m.toml"))
    assert resolve(reg, "r").remote.cache_prompt is True


@pytest.mark.parametrize(
    "table, message",
    [
        ("base_url = 'gpu-box:8000'", r"\[models.a\].base_url: must be an http:// or https:// URL"),
        ("base_url = 'ftp://x'", "base_url: must be an http"),
        ("base_url = 'http://x'\npath = 'y.gguf'", "exactly one of .* 'base_url'"),
        ("path = 'y.gguf'\nmodel = 'm'", r"\[models.a\].model: only a remote model"),
        ("base_url = 'http://x'\napi_key_env = 'not a var'", "api_key_env: expected the name of an environment variable"),
        ("base_url = 'http://x'\nn_ctx = 100", "n_ctx: must be at least 256"),
        ("base_url = 'http://x'\nconcurrency = 0", "concurrency: must be between 1 and 256"),
        ("base_url = 'http://x'\ntimeout = -1", "timeout: must be > 0"),
        ("base_url = 'http://x'\ntimeout = 'long'", "timeout: expected int or float"),
        ("base_url = 'http://x'\nmodle = 'm'", "unknown key 'modle'"),
        ("base_url = 'http://x'\nmodel = ''", "model: must not be empty"),
        ("base_url = 'http://x'\ncache_prompt = 1", "cache_prompt: expected bool"),
        ("path = 'y.gguf'\ncache_prompt = true", r"\[models.a\].cache_prompt: only a remote model"),
    ],
)
def test_broken_remote_entries_name_file_table_and_key(table, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_registry(f"[models.a]\n{table}\n", Path("/etc/m.toml"))
    assert str(info.value).startswith("/etc/m.toml: ")


def test_backend_flag_runs_any_model_on_a_server():
    reg = parse_registry(REMOTE, Path("m.toml"))
    local = choose_model(reg, "local", backend="http://127.0.0.1:8080").model
    assert local.remote == RemoteTarget("http://127.0.0.1:8080") and local.available
    moved = with_backend(resolve(reg, "gpu"), "http://other:1/v1")
    assert moved.remote.base_url == "http://other:1" and moved.remote.model == "AIDC-AI/Marco-o1"
    with pytest.raises(UsageError, match="--backend must be an http"):
        with_backend(local, "localhost:8080")


def test_models_command_lists_remote_entries(tmp_path):
    registry = tmp_path / "m.toml"
    registry.write_text(REMOTE)
    result = CliRunner().invoke(app, ["models", "--json", "--models", str(registry)])
    assert result.exit_code == 0, result.output
    rows = {m["name"]: m for m in json.loads(result.stdout)["models"]}
    assert rows["gpu"]["state"] == "remote" and rows["gpu"]["path"] == "http://gpu-box:8000"
    pull = CliRunner().invoke(app, ["pull", "gpu", "--models", str(registry)])
    assert pull.exit_code == 2 and "runs on a server" in pull.output

