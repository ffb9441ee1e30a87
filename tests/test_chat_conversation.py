"""The chat's conversation file and its settings by name (pure, no model)."""

from __future__ import annotations

import json

import pytest

from marco_cli.chat.conversation import (
    Conversation,
    Turn,
    check_writable,
    load_conversation,
    save_conversation,
)
from marco_cli.chat.settings import KEYS, ChatSettings
from marco_cli.core.errors import ConversationFileError, UsageError
from marco_cli.core.settings import Action, Mode
from marco_cli.formats.prompts import Message


def test_set_by_name_parses_and_validates():
    s = ChatSettings().with_text("temperature", "0.5").with_text("simulations", "8")
    s = s.with_text("action", "MINI-32").with_text("reflection", "on").with_text("budget", "off")
    assert s.generation.temperature == s.search.temperature == 0.5  # shared keys set both modes
    assert (s.search.simulations, s.search.action, s.search.reflection, s.search.budget) == (
        8,
        Action.MINI_32,
        True,
        None,
    )
    assert s.with_text("system", "Be brief.").system == "Be brief."
    assert s.with_text("system", "Be brief.").with_text("system", "default").system is None


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("bogus", "1", "unknown setting 'bogus'"),
        ("temperature", "hot", "temperature must be a number, got 'hot'"),
        ("temperature", "9", "temperature must be between 0 and 5, got 9.0"),
        ("simulations", "0", "simulations must be > 0"),
        ("simulations", "2.5", "simulations must be a whole number"),
        ("action", "leap", "action must be step, mini-64 or mini-32"),
        ("reflection", "maybe", "reflection must be on or off"),
        ("seed", "", "/set seed needs a value"),
    ],
)
def test_bad_values_are_one_line_usage_errors(key, value, message):
    with pytest.raises(UsageError) as err:
        ChatSettings().with_text(key, value)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not str(err.value).startswith("--")


def test_mode_and_describe():
    s = ChatSettings().with_mode("MCTS")
    assert s.mode is Mode.MCTS and s.max_tokens == s.search.max_tokens
    assert ("simulations", "4") in s.describe() and ("pick", "vote") in s.describe()
    assert ("simulations", "4") not in s.with_mode(Mode.COT).describe()
    with pytest.raises(UsageError, match="unknown mode 'fast'"):
        s.with_mode("fast")
    assert set(KEYS) >= {
        "simulations",
        "action",
        "children",
        "temperature",
        "reflection",
        "max-tokens",
        "seed",
        "system",
    }


def _conversation() -> Conversation:
    settings = ChatSettings().with_text("temperature", "0.3").with_text("system", "Terse, please.").with_mode("mcts")
    return Conversation(
        "smollm2-135m:Q4_1",
        settings,
        [
            Turn("What is 2+2?", "4", "2 plus 2 is 4"),
            Turn("And ünïcode?", "", error="the model failed"),
            Turn("Times 3?", "12", "4*3"),
        ],
    )


def test_history_sends_outputs_only_and_skips_failed_turns():
    conv = _conversation()
    assert conv.history() == (
        Message("user", "What is 2+2?"),
        Message("assistant", "4"),
        Message("user", "Times 3?"),
        Message("assistant", "12"),
    )
    conv.context_start = 1
    assert conv.history() == (Message("user", "Times 3?"), Message("assistant", "12"))
    assert len(conv.in_context) == 1


def test_save_load_round_trip(tmp_path):
    conv = _conversation()
    path = tmp_path / "chat.json"
    save_conversation(conv, path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["version"] == 1 and data["mode"] == "mcts" and data["system"] == "Terse, please."
    assert data["turns"][0] == {"user": "What is 2+2?", "assistant": "4", "thought": "2 plus 2 is 4"}
    assert data["turns"][1]["error"] == "the model failed"
    back = load_conversation(path)
    assert back.turns == conv.turns and back.settings == conv.settings and back.model == conv.model
    assert [p.name for p in tmp_path.iterdir()] == ["chat.json"]  # no temporary file left behind


def test_save_replaces_atomically_and_reports_bad_paths(tmp_path):
    path = tmp_path / "chat.json"
    path.write_text("old")
    save_conversation(Conversation("m"), path)
    assert json.loads(path.read_text())["model"] == "m"
    with pytest.raises(ConversationFileError, match="is a directory"):
        save_conversation(Conversation(), tmp_path)
    with pytest.raises(ConversationFileError, match="cannot save the conversation"):
        save_conversation(Conversation(), tmp_path / "missing" / "chat.json")
    with pytest.raises(ConversationFileError, match="does not exist"):
        check_writable(tmp_path / "missing" / "chat.json")
    check_writable(path)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        (b"\xff\xfe", "not UTF-8"),
        (b"{nope", "invalid JSON at line 1"),
        (b"[]", "expected a JSON object"),
        (b'{"version": 7, "turns": []}', "unsupported version 7"),
        (b'{"version": 1, "turns": [], "colour": 1}', "unknown key 'colour'"),
        (b'{"version": 1, "mode": "fast"}', "'mode' must be cot, mcts or vote"),
        (b'{"version": 1, "turns": {}}', "'turns' must be a list"),
        (b'{"version": 1, "turns": [{"user": 3}]}', "turn 1: 'user' must be a string"),
        (b'{"version": 1, "turns": [{"user": " "}]}', "turn 1: 'user' is empty"),
        (
            b'{"version": 1, "settings": {"mcts": {"simulations": "8"}}}',
            "settings.mcts.simulations: unexpected value '8'",
        ),
        (b'{"version": 1, "settings": {"mcts": {"simulations": 0}}}', "simulations must be > 0"),
        (b'{"version": 1, "settings": {"cot": {"temprature": 1}}}', "settings.cot: unknown key 'temprature'"),
        (b'{"version": 1, "settings": {"mcts": {"action": "leap"}}}', "expected one of step, mini-64, mini-32"),
    ],
)
def test_bad_files_are_one_line_errors_naming_the_file(tmp_path, content, message):
    path = tmp_path / "chat.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConversationFileError) as err:
        load_conversation(path)
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)
