"""Prompt formatting and Thought/Output parsing (pure functions)."""

from __future__ import annotations

from marco_cli.formats.prompts import Message, build_messages, render_chat, render_chatml
from marco_cli.formats.reasoning import MARCO, NONE, NONE_INSTRUCTION, THINK

SMOL_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are SmolLM<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def test_parse_full_tags():
    p = MARCO.parse("<Thought>\nstep 1\n</Thought>\n<Output>\n42\n</Output>")
    assert (p.thought, p.answer, p.has_tags) == ("step 1", "42", True)


def test_parse_leading_whitespace_and_missing_close():
    p = MARCO.parse("  \n<Thought>a</Thought><Output>The Answer Is B")
    assert p.thought == "a" and p.answer == "The Answer Is B"


def test_parse_no_tags_keeps_text_and_case():
    p = MARCO.parse("  Hello WORLD  ")
    assert (p.thought, p.answer, p.has_tags) == ("", "Hello WORLD", False)


def test_parse_thought_only():
    assert MARCO.parse("<Thought>only thinking").answer == "only thinking"
    p = MARCO.parse("<Thought>t</Thought>\nfinal")
    assert p.thought == "t" and p.answer == "final"


def test_formats_with_a_thought_leave_system_to_template():
    for fmt in (MARCO, THINK):
        msgs = build_messages("q", system=None, reasoning=fmt)
        assert msgs == [Message("user", "q")]
        msgs = build_messages("q", system="be brief", reasoning=fmt)
        assert msgs[0] == Message("system", "be brief")


def test_models_without_a_format_are_asked_for_an_answer_line():
    msgs = build_messages("q", system=None, reasoning=NONE)
    assert msgs[0].role == "system" and NONE_INSTRUCTION in msgs[0].content
    assert "<Thought>" not in msgs[0].content


def test_chatml_with_default_system():
    text = render_chatml([Message("user", "hi")], default_system="SYS")
    assert text == "<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_gguf_template_is_used_and_broken_template_falls_back():
    msgs = [Message("user", "hi")]
    text = render_chat(msgs, template=SMOL_TEMPLATE)
    assert text.startswith("<|im_start|>system\nYou are SmolLM") and text.endswith("<|im_start|>assistant\n")
    assert render_chat(msgs, template="{% broken", default_system="S") == render_chatml(msgs, "S")
