"""`marco models`: the table (plain when piped), JSON, and on-disk states."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from marco_cli.cli import app


@pytest.mark.model
def test_models_table_plain_when_piped():
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0, result.stderr
    assert "\x1b[" not in result.stdout
    lines = result.stdout.splitlines()
    assert lines[0].split()[:6] == ["name", "aliases", "quant", "size", "on", "disk"]
    assert any(line.startswith("marco-o1 *") and "Q4_K_M" in line for line in lines)
    assert any(line.startswith("smollm2-135m") and " yes " in line for line in lines)
    assert "GPU offload:" in result.stdout


@pytest.mark.model
def test_models_json_shows_downloads_and_partials(isolated_home):
    target = isolated_home / "models" / "marco-o1"
    target.mkdir(parents=True)
    (target / "Marco-o1-Q8_0.gguf").write_bytes(b"GGUF" + b"\0" * 100)
    result = CliRunner().invoke(app, ["models", "--json"])
    data = json.loads(result.stdout)
    rows = {(m["name"], m["quant"]): m for m in data["models"]}
    assert rows[("marco-o1", "Q8_0")]["on_disk"] and rows[("marco-o1", "Q8_0")]["state"] == "unverified"
    assert rows[("marco-o1", "Q4_K_M")]["state"] == "no" and rows[("marco-o1", "Q4_K_M")]["default"]
    assert rows[("smollm2-135m", "Q4_1")]["state"] == "yes"
    assert rows[("smollm2-135m", "Q4_1")]["reasoning"] == "none"
    assert rows[("marco-o1", "Q8_0")]["reasoning"] == "marco"
    assert rows[("r1-distill-qwen-1.5b", "Q4_K_M")]["reasoning"] == "think"


def test_models_broken_registry_is_one_line(tmp_path):
    bad = tmp_path / "m.toml"
    bad.write_text("default = 3\n[models.a]\npath='x'\n")
    result = CliRunner().invoke(app, ["models", "--models", str(bad)])
    assert result.exit_code == 2 and result.stderr.startswith("marco: error: ") and result.stdout == ""
