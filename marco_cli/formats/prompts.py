"""Pure prompt functions: the conversation to send and its chat formatting.

Marco-o1 is a Qwen2-7B-Instruct fine-tune and speaks ChatML; its own chat
template injects a fixed system prompt when the conversation has none
(docs/algorithm.md section 1). We render the model's template from its GGUF
metadata when there is one, so every model gets its own format, and fall
back to plain ChatML with the registry's system prompt otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # jinja2 is imported only when a model brings a template
    from jinja2 import Template

from .reasoning import MARCO, NONE_INSTRUCTION, ReasoningFormat

DEFAULT_SYSTEM = "You are a helpful assistant."


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


def build_messages(
    question: str,
    *,
    system: str | None,
    reasoning: ReasoningFormat = MARCO,
    history: tuple[Message, ...] = (),
) -> list[Message]:
    """The conversation to render.

    - ``marco`` and ``think`` models were trained on their format: without
      ``--system`` we send no system message, so Marco-o1's template injects
      its trained one and R1 distills get none (DeepSeek advises against one).
    - ``none`` models get the system prompt plus a request to end with an
      ``Answer:`` line, the marker the answer is cut at.
    """
    messages: list[Message] = []
    if reasoning.has_thought:
        if system:
            messages.append(Message("system", system))
    else:
        messages.append(Message("system", f"{system or DEFAULT_SYSTEM}\n\n{NONE_INSTRUCTION}"))
    messages.extend(history)
    messages.append(Message("user", question))
    return messages


def render_chatml(messages: list[Message], default_system: str | None = None) -> str:
    """ChatML: ``<|im_start|>{role}\\n{content}<|im_end|>\\n`` then the assistant header."""
    parts = []
    if default_system is not None and (not messages or messages[0].role != "system"):
        parts.append(f"<|im_start|>system\n{default_system}<|im_end|>\n")
    parts.extend(f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages)
    parts.append("<|im_start|>assistant\n")
    return "".join(parts)


@lru_cache(maxsize=8)
def _compile_template(template: str) -> Template:
    # Same environment Hugging Face uses for chat templates: sandboxed, with
    # trim_blocks/lstrip_blocks, and a raise_exception helper.
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template)


def render_chat(
    messages: list[Message],
    *,
    template: str | None,
    default_system: str | None = None,
    bos_token: str = "",
    eos_token: str = "",
) -> str:
    """Render with the model's Jinja chat template, or ChatML when there is none
    (or it cannot be rendered: a broken template must not stop the user)."""
    return _render(messages, template, default_system, bos_token, eos_token)[0]


def _render(
    messages: list[Message], template: str | None, default_system: str | None, bos_token: str, eos_token: str
) -> tuple[str, bool]:
    """The prompt, and whether the model's own template made it."""
    if template:
        try:
            text = _compile_template(template).render(
                messages=[{"role": m.role, "content": m.content} for m in messages],
                add_generation_prompt=True,
                bos_token=bos_token,
                eos_token=eos_token,
            )
            return text, True
        except Exception:  # jinja2 raises many types; ChatML is the safe fallback
            pass
    return render_chatml(messages, default_system), False


@dataclass(frozen=True)
class PromptPart:
    """A piece of a rendered prompt. ``markup`` pieces come from the chat
    template (``<|im_start|>user``...) and are tokenised with special tokens
    parsed; the others are message contents, tokenised as plain text, so a
    question that contains ``<|im_end|>`` cannot end its own turn."""

    text: str
    markup: bool


_MARK = re.compile("\ue000(\\d+)\ue001")


def render_chat_parts(
    messages: list[Message],
    *,
    template: str | None,
    default_system: str | None = None,
    bos_token: str = "",
    eos_token: str = "",
) -> list[PromptPart]:
    """``render_chat`` cut into template markup and message contents.

    The template is rendered a second time with every content replaced by a
    numbered stand-in (private-use characters no template alters); where the
    stand-ins land is where the contents go. Their joined text is the prompt
    ``render_chat`` gives, unless the template rewrites contents (trims them,
    say): then the contents go in as written, which is what the user sent."""
    contents = [m.content for m in messages]
    stand_ins = [Message(m.role, f"\ue000{i}\ue001") for i, m in enumerate(messages)]
    system_mark = None
    if default_system is not None:
        system_mark = f"\ue000{len(contents)}\ue001"
        contents.append(default_system)
    real, real_template = _render(messages, template, default_system, bos_token, eos_token)
    skeleton, skeleton_template = _render(stand_ins, template, system_mark, bos_token, eos_token)
    if real_template != skeleton_template:  # the template failed on one of them only: ChatML for both
        real, skeleton = render_chatml(messages, default_system), render_chatml(stand_ins, system_mark)
    for transform in (None, str.strip):
        parts = _split(skeleton, contents, transform)
        if "".join(p.text for p in parts) == real:
            return parts
    return _split(skeleton, contents, None)


def _split(skeleton: str, contents: list[str], transform: Callable[[str], str] | None) -> list[PromptPart]:
    parts: list[PromptPart] = []
    at = 0
    for match in _MARK.finditer(skeleton):
        if match.start() > at:
            parts.append(PromptPart(skeleton[at : match.start()], True))
        content = contents[int(match.group(1))]
        content = transform(content) if transform else content
        if content:
            parts.append(PromptPart(content, False))
        at = match.end()
    if at < len(skeleton):
        parts.append(PromptPart(skeleton[at:], True))
    return parts
