"""The settings spec: every setting declared once, and every surface derived
from it (flags, /set keys, the server's "marco" object, the README table)
reads, checks and words values the same way."""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

import pytest
from scripted_backend import ScriptedBackend
from typer.main import get_command
from typer.testing import CliRunner

from marco_cli.chat.settings import KEYS, ChatSettings
from marco_cli.cli import app
from marco_cli.core.errors import UsageError
from marco_cli.core.settings import (
    SPEC,
    GenerationSettings,
    Mode,
    ModelSettings,
    RuntimeSettings,
    SearchSettings,
    default_temperature,
)
from marco_cli.core.spec import SettingError, Surface, spec_of
from marco_cli.models.registry import parse_registry, resolve
from marco_cli.reasoner import Reasoner
from marco_cli.server.schema import MarcoOptions, RequestError
from marco_cli.server.service import ChatService

MODEL_COMMANDS = ("ask", "chat", "translate", "eval", "serve")
# The only flags a model command leaves out, and why (its own options say so).
LEFT_OUT = {"eval": {"--action", "--mode"}, "serve": {"--mode"}}
FLOATS = [s for s in SPEC if s.kind is float]


@pytest.fixture(scope="module")
def commands():
    group = get_command(app)
    return {name: group.commands[name] for name in group.commands}  # type: ignore[attr-defined]


def _opts(command) -> set[str]:
    return {opt for param in command.params for opt in getattr(param, "opts", ())}


def test_every_settings_field_is_declared_once():
    for cls in (ModelSettings, RuntimeSettings, GenerationSettings, SearchSettings):
        for f in fields(cls):
            assert spec_of(f) is not None, f"{cls.__name__}.{f.name} has no setting(...) declaration"
    names = [s.name for s in SPEC]
    assert len(names) == len(set(names))
    # shared settings are one setting with a field in each mode
    assert SPEC.fields_of("temperature") == [(GenerationSettings, "temperature"), (SearchSettings, "temperature")]


def test_every_model_command_takes_every_shared_flag(commands):
    shared = {s.flag for s in SPEC.on(Surface.CLI)}
    assert {"--backend", "--top-p", "--top-k", "--step-max-tokens", "--leaves", "--seed", "--temperature"} <= shared
    for name in MODEL_COMMANDS:
        missing = shared - _opts(commands[name])
        assert missing == LEFT_OUT.get(name, set()), (name, missing)


def test_chat_keys_and_request_fields_are_the_spec():
    assert list(KEYS) == [s.name for s in SPEC.on(Surface.CHAT)]
    assert set(MarcoOptions.model_fields) == {s.key for s in SPEC.on(Surface.REQUEST)}
    assert {"top-k", "step-max-tokens", "leaves", "delimiter"} <= set(KEYS)


def test_one_rule_for_the_default_temperature():
    assert default_temperature(Mode.COT) == GenerationSettings().temperature == 0.0
    assert default_temperature(Mode.MCTS) == SearchSettings().temperature == 0.6
    assert default_temperature(Mode.COT, samples=4) == 0.6


@pytest.mark.parametrize("setting", FLOATS, ids=lambda s: s.name)
@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_non_finite_floats_are_refused_on_every_surface(setting, bad):
    # the spec itself
    with pytest.raises(SettingError, match="must be a finite number"):
        setting.parse(bad)
    with pytest.raises(SettingError, match="must be a finite number"):
        setting.check(float(bad))
    # the command line: one line, exit 2, before any model is loaded
    result = CliRunner().invoke(app, ["ask", "-m", "tiny", setting.flag, bad, "hi"])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == f"marco: error: {setting.flag} must be a finite number, got {float(bad)!r}\n"
    # chat's /set
    if Surface.CHAT in setting.surfaces:
        with pytest.raises(UsageError, match=f"^{setting.name} must be a finite number"):
            ChatSettings().with_text(setting.name, bad)


@pytest.fixture
def service():
    model = resolve(
        parse_registry('[models.s]\npath = "/nowhere/s.gguf"\nthought_format = true\n', Path("m.toml")), "s"
    )
    service = ChatService(Reasoner(model, backend=ScriptedBackend()))
    yield service
    service.close()


@pytest.mark.parametrize(
    "setting", [s for s in FLOATS if Surface.REQUEST in s.surfaces or s.openai], ids=lambda s: s.name
)
def test_a_request_with_a_non_finite_float_is_a_400_naming_the_field(service, setting):
    body = {"model": "s+mcts", "messages": [{"role": "user", "content": "hi"}]}
    if Surface.REQUEST in setting.surfaces:
        body["marco"], param = {setting.key: math.nan}, f"marco.{setting.key}"
    else:
        body[setting.openai], param = math.inf, setting.openai
    with pytest.raises(RequestError) as err:
        service.call(body)
    assert err.value.status == 400 and err.value.param == param
    assert err.value.message.startswith(f"{param}: {setting.name} must be a finite number")


def test_errors_are_worded_by_each_surface(service):
    cli = CliRunner().invoke(app, ["ask", "-m", "tiny", "--max-depth", "0", "hi"])
    assert cli.stderr == "marco: error: --max-depth must be > 0, got 0\n"
    with pytest.raises(UsageError) as chat:
        ChatSettings().with_text("max-depth", "0")
    assert str(chat.value) == "max-depth must be > 0, got 0"
    with pytest.raises(RequestError) as server:
        service.call({"model": "s+mcts", "messages": [{"role": "user", "content": "hi"}], "marco": {"max_depth": 0}})
    assert server.value.message == "marco.max_depth: max-depth must be > 0, got 0" and server.value.status == 400
    with pytest.raises(RequestError) as zero:  # 0 is refused, not read as "the default"
        service.call({"model": "s", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0})
    assert zero.value.message == "max_tokens: max-tokens must be > 0, got 0"


@pytest.mark.parametrize(
    "args, message",
    [
        (["ask", "--mode", "fast", "hi"], "marco: error: --mode must be cot, mcts or vote, got 'fast'"),
        (["ask", "--simulations", "many", "hi"], "marco: error: --simulations must be a whole number, got 'many'"),
        (["serve", "--port", "abc"], "marco: error: invalid value for --port"),
        (["ask", "--no-such-flag", "hi"], "marco: error: no such option: --no-such-flag"),
        (["eval"], "marco: error: missing argument DATASET"),
        (["nosuchcommand"], "marco: error: no such command nosuchcommand"),
        (["translate", "hi"], "marco: error: missing option --to"),
    ],
)
def test_click_usage_errors_read_like_marco_errors(args, message):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(message), result.stderr
    assert result.stderr.count("\n") == 1 and "Usage:" not in result.stderr and "Error:" not in result.stderr


def test_help_shows_metavars_and_whole_summaries(commands):
    top = CliRunner().invoke(app, ["--help"])
    assert top.exit_code == 0 and "..." not in top.stdout.split("Commands:")[1]
    assert "deepest common ancestor" in top.stdout  # export-dpo's summary, not cut
    ask = CliRunner().invoke(app, ["ask", "--help"]).stdout
    assert "-m, --model NAME[:QUANT]|FILE" in ask and "--backend URL" in ask and "--save-tree FILE" in ask
    assert "<str>" not in ask and "<path>" not in ask
    assert "MCTS search:" in ask and "Model runtime:" in ask
    assert "[default: mcts]" in ask and "[default: cot]" in CliRunner().invoke(app, ["chat", "--help"]).stdout
    replay = CliRunner().invoke(app, ["replay", "--help"]).stdout
    assert "FILE" in replay and "<path>" not in replay
    dpo = CliRunner().invoke(app, ["export-dpo", "--help"]).stdout
    assert "TREE..." in dpo and "list[Path]" not in dpo


def test_resume_takes_a_file_or_continues_the_output_file(tmp_path):
    data = tmp_path / "q.tsv"
    data.write_text("What is 1+1?\t2\n", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["eval", str(data), "--resume", str(tmp_path / "a.jsonl"), "--out", str(tmp_path / "b.jsonl")]
    )
    assert result.exit_code == 2 and "name two files" in result.stderr
    result = CliRunner().invoke(app, ["chat", "--resume"])
    assert result.exit_code == 2 and "--resume needs --save" in result.stderr


def test_flags_know_what_was_given(monkeypatch):
    """Only what the command line gave wins over a resumed chat; an optional
    setting given as "off" is off, not its default; an environment variable
    fills a value without counting as given."""
    import typer

    from marco_cli.commands import _options as o

    seen = {}
    probe = typer.Typer()

    @probe.command()
    @o.settings_flags(mode=Mode.COT)
    def run(*, flags: o.Flags) -> None:
        seen["flags"] = flags

    @probe.command()
    def other() -> None: ...

    monkeypatch.setenv("MARCO_MODEL", "from-env")
    assert CliRunner().invoke(probe, ["run", "--budget", "off", "-t", "0.3", "--no-reflection"]).exit_code == 0
    flags = seen["flags"]
    assert flags.given == {"budget", "temperature", "reflection"}
    assert flags.model_settings.model == "from-env" and flags.mode is Mode.COT
    assert flags.given_values(Surface.CHAT) == {"budget": None, "temperature": 0.3, "reflection": False}
    resumed = ChatSettings().with_text("budget", "30")
    for key, value in flags.given_values(Surface.CHAT).items():
        resumed = resumed.with_value(key, value)
    assert resumed.search.budget is None and resumed.generation.temperature == resumed.search.temperature == 0.3
    assert CliRunner().invoke(probe, ["run"]).exit_code == 0
    plain = seen["flags"]
    assert plain.generation().temperature == 0.0 and plain.search().temperature == 0.6
    assert plain.generation(samples=3).temperature == 0.6
