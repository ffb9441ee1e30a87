"""The chat use case, slash commands, line input and the REPL loop, on a
scripted backend (fast and exact). test_chat.py runs the same paths on the
real model through the CLI."""

from __future__ import annotations

import io

import pytest
from chat_fakes import fake_session

from marco_cli.core.errors import BackendError, InputError, UnknownModelError, UsageError
from marco_cli.core.settings import Mode
from marco_cli.reasoner import Interrupted
from marco_cli.ui.line_input import StreamLines, UserInput, read_input
from marco_cli.ui.repl import Repl
from marco_cli.ui.slash import QUIT, SlashContext, dispatch, parse


# -- the session --------------------------------------------------------------
def test_earlier_turns_go_back_as_their_output_only():
    session, factory = fake_session()
    assert session.ask("first question").answer == "answer 1"
    session.ask("second question")
    prompt = factory.last.prompts[-1]
    assert "first question" in prompt and "answer 1" in prompt
    assert "thinking 1" not in prompt  # the thought is dropped
    turn = session.conversation.turns[0]
    assert (turn.user, turn.assistant, turn.thought) == ("first question", "answer 1", "thinking 1")


def test_context_trimming_drops_oldest_turns_with_a_notice():
    notices: list[str] = []
    session, factory = fake_session(n_ctx=700, notices=notices)
    session.set("max-tokens", "100")
    for i in range(8):
        session.ask(f"question number {i} " + "x" * 40)
    assert len(session.conversation.turns) == 8  # all kept for the file
    assert 0 < session.conversation.context_start < 8
    assert notices and all("dropped the oldest" in n for n in notices)
    for prompt in factory.last.prompts:
        assert len(prompt) <= 700 - 100
    assert "question number 7" in factory.last.prompts[-1]
    assert "question number 0" not in factory.last.prompts[-1]
    usage = session.context_usage()
    assert usage.dropped == session.conversation.context_start and usage.used <= 700


def test_a_question_longer_than_the_context_is_an_error_not_a_crash():
    session, _ = fake_session(n_ctx=300)
    session.ask("short")
    with pytest.raises(Exception) as err:
        session.ask("y" * 1000)
    assert "tokens" in str(err.value)
    assert session.conversation.turns[-1].error  # kept, so nothing typed is lost
    assert session.ask("short again").answer  # and the session goes on


def test_model_error_keeps_the_question_ctrl_c_keeps_nothing():
    session, factory = fake_session()
    factory.last.fail = "the GPU caught fire"
    with pytest.raises(BackendError):
        session.ask("please answer")
    assert session.conversation.turns[-1].user == "please answer"
    assert session.conversation.history() == ()  # failed turns are not sent back
    factory.last.fail, factory.last.interrupt_after = None, 3
    with pytest.raises(Interrupted) as err:
        session.ask("long one")
    assert err.value.partial.interrupted
    assert [t.user for t in session.conversation.turns] == ["please answer"]


@pytest.mark.model
def test_switch_model_bad_name_keeps_the_current_one():
    session, factory = fake_session()
    before = session.reasoner
    with pytest.raises(UnknownModelError):
        session.switch_model("no-such-model")
    assert session.reasoner is before and not factory.last.closed
    with pytest.raises(Exception, match="not found"):
        session.switch_model("/nowhere/model.gguf")
    assert session.reasoner is before
    assert session.switch_model("tiny").model.label == "smollm2-135m:Q4_1"  # same model: nothing reloads
    assert session.reasoner is before


def test_save_and_load_through_the_session(tmp_path):
    session, _ = fake_session()
    session.set("temperature", "0.25")
    session.ask("remember me")
    session.set_mode("mcts")
    path = tmp_path / "c.json"
    session.save(path)
    other, _ = fake_session()
    other.load(path)
    assert other.conversation.turns == session.conversation.turns
    assert other.settings == session.settings and other.settings.mode is Mode.MCTS
    assert other.conversation.model == "smollm2-135m:Q4_1"


# -- slash commands -----------------------------------------------------------
def test_parse():
    assert parse("/set  temperature 0.5 ") == ("set", "temperature 0.5")
    assert parse("/EXIT") == ("exit", "")
    with pytest.raises(UsageError):
        parse("/")


@pytest.mark.model
def test_each_command(tmp_path):
    session, _ = fake_session()
    assert "/mode cot|mcts" in dispatch(session, "/help") and "simulations" in dispatch(session, "/help")
    assert dispatch(session, "/set simulations 4") == "simulations: 4 (not used in cot mode)"
    assert dispatch(session, "/set system Answer in French.") == "system: Answer in French."
    session.ask("bonjour")
    assert dispatch(session, "/mode mcts") == "mode: mcts"
    shown = dispatch(session, "/show")
    assert "smollm2-135m:Q4_1" in shown and "mcts" in shown and "simulations      4" in shown
    assert "1 in context" in shown and "Answer in French." in shown
    assert "saved 1 turns" in dispatch(session, f"/save {tmp_path / 'a.json'}")
    assert "saved" in dispatch(session, "/save", SlashContext(save_path=str(tmp_path / "b.json")))
    assert dispatch(session, "/reset") == "the conversation is cleared" and not session.conversation.turns
    assert "loaded 1 turns" in dispatch(session, f"/load {tmp_path / 'a.json'}")
    assert dispatch(session, "/model").startswith("model: smollm2-135m:Q4_1")
    assert dispatch(session, "/model tiny") == "model: smollm2-135m:Q4_1"
    assert dispatch(session, "/exit") is QUIT and dispatch(session, "/bye") is QUIT


@pytest.mark.parametrize(
    "line, message",
    [
        ("/nope", "unknown command '/nope'"),
        ("/set bogus 1", "unknown setting 'bogus'"),
        ("/set temperature", "/set temperature needs a value"),
        ("/mode fast", "unknown mode 'fast'"),
        ("/tree", "no search to show yet"),
        ("/save", "usage: /save FILE"),
        ("/load", "usage: /load FILE"),
        ("/load /nowhere/c.json", "no such file"),
        ("/model no-such-model", "unknown model 'no-such-model'"),
        ("/show everything", "/show takes no argument"),
    ],
)
def test_bad_commands_are_usage_errors(line, message):
    session, _ = fake_session()
    with pytest.raises(Exception) as err:
        dispatch(session, line)
    assert message in str(err.value)


# -- line input -----------------------------------------------------------------
def _reader(*lines: str):
    it = iter(lines)

    def read_line(prompt: str) -> str:
        try:
            return next(it)
        except StopIteration:
            raise EOFError from None

    return read_line


def test_blocks():
    assert read_input(_reader("  hello  ")) == UserInput("hello")
    assert read_input(_reader('"""', "/not a command", "", "line 3", '"""')) == UserInput(
        "/not a command\n\nline 3", block=True
    )
    assert read_input(_reader('"""first', 'last"""')) == UserInput("first\nlast", block=True)
    assert read_input(_reader('"""one line"""')) == UserInput("one line", block=True)
    assert read_input(_reader('"""', "cut short")) == UserInput("cut short", block=True, unterminated=True)
    with pytest.raises(EOFError):
        read_input(_reader())


def test_stream_lines_reject_bad_utf8_by_line():
    lines = StreamLines(io.BytesIO(b"ok\r\n\xff\xfe\n"))
    assert lines("") == "ok"
    with pytest.raises(InputError, match="line 2 is not valid UTF-8"):
        lines("")
    with pytest.raises(EOFError):
        lines("")


# -- the loop (piped face) ------------------------------------------------------
def _repl(script: bytes, session=None):
    session = session or fake_session()[0]
    return Repl(session, StreamLines(io.BytesIO(script)), interactive=False), session


def test_piped_loop_answers_on_stdout_feedback_on_stderr(capsys):
    repl, session = _repl(b'hello\n/set temperature 0.5\n"""\ntwo\nlines\n"""\n\n/nope\n/exit\nnever read\n')
    assert repl.run() == 1  # a piped run with a rejected line says so
    out, err = capsys.readouterr()
    assert out == "answer 1\n\nanswer 2\n\n"
    assert "temperature: 0.5" in err and "marco: error: line 8: unknown command '/nope'" in err
    assert [t.user for t in session.conversation.turns] == ["hello", "two\nlines"]


def test_piped_loop_model_error_goes_on(capsys):
    session, factory = fake_session()
    factory.last.fail = "boom"
    repl, _ = _repl(b"a\nb\n", session)
    assert repl.run() == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("marco: error: line") == 2 and "boom" in err
    assert [t.error for t in session.conversation.turns] == ["boom", "boom"]


def test_piped_ctrl_c_prints_the_partial_answer_then_ends(capsys):
    session, factory = fake_session()
    factory.last.replies = ["<Output>partial answer that goes on</Output>"]
    factory.last.interrupt_after = 22
    repl, _ = _repl(b"go\nnot reached\n", session)
    with pytest.raises(KeyboardInterrupt):
        repl.run()
    out, err = capsys.readouterr()
    assert out == "partial answer\n\n" and "(cancelled)" in err
    assert session.conversation.turns == []


def test_autosave_after_each_turn(tmp_path, capsys):
    session, _ = fake_session()
    path = tmp_path / "auto.json"
    repl = Repl(session, StreamLines(io.BytesIO(b"one\ntwo\n")), interactive=False, save_path=str(path))
    assert repl.run() == 0
    from marco_cli.chat.conversation import load_conversation

    assert [t.user for t in load_conversation(path).turns] == ["one", "two"]


def test_no_thought_format_is_said_once_where_thoughts_show(capsys, monkeypatch):
    """A terminal chat streams thoughts dimmed on stderr; with the embedded
    model's own entry (no thought format) it says so once, then answers."""
    from chat_fakes import Factory

    from marco_cli.chat.session import ChatSession
    from marco_cli.core.settings import RuntimeSettings
    from marco_cli.models.registry import load_registry, resolve

    monkeypatch.setattr("marco_cli.ui.repl.is_tty", lambda stream: True)
    session = ChatSession(
        load_registry(), RuntimeSettings(), resolve(load_registry(), "tiny"), reasoner_factory=Factory()
    )
    repl = Repl(session, StreamLines(io.BytesIO(b"one\ntwo\n")), interactive=True)
    assert repl.run() == 0
    out, err = capsys.readouterr()
    said = [line for line in err.splitlines() if "no thought format" in line]
    assert said == [
        "marco: smollm2-135m:Q4_1 has no thought format; the answer is what follows its last 'Answer:' line"
    ]
    assert "answer 1" in out and "answer 2" in out and "Output" not in out
